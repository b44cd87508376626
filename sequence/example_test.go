package sequence_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/sequence"
)

// A Stamper numbers each key's events; the numbers sort as strings too.
func ExampleStamper() {
	seq := sequence.NewStamper()
	var events []*crossbus.Event
	for _, account := range []string{"acct-1", "acct-2", "acct-1"} {
		e := crossbus.NewEvent("com.example.balance.changed", "/ledger")
		crossbus.SetPartitionKey(&e, account)
		events = append(events, &e)
	}
	seq.Stamp(events...)
	for _, e := range events {
		fmt.Println(crossbus.PartitionKey(e), crossbus.ExtensionString(e, crossbus.ExtSequence))
	}
	// Output:
	// acct-1 00000000000000000001
	// acct-2 00000000000000000001
	// acct-1 00000000000000000002
}

// The resequencer hands a key's events to the handler in sequence order,
// whatever order they arrive in.
func ExampleResequence() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	reseq, _ := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: 30 * time.Second})

	var got []string
	done := make(chan struct{})
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		panic(err)
	}
	_ = r.Handle("ledger", "balances", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		got = append(got, e.Subject()) // one at a time per key
		if len(got) == 4 {
			close(done)
		}
		return nil
	}), crossbus.WithMiddleware(reseq), crossbus.WithPrefetch(1), crossbus.WithConcurrency(8))
	runCtx, stop := context.WithCancel(ctx)
	go r.Run(runCtx)
	defer stop()
	<-r.Ready()

	var events []*crossbus.Event
	for _, n := range []uint64{3, 1, 4, 2} { // arrives shuffled
		e := crossbus.NewEvent("com.example.balance.changed", "/ledger")
		crossbus.SetPartitionKey(&e, "acct-1")
		e.SetExtension(crossbus.ExtSequence, sequence.Format(n))
		e.SetSubject(fmt.Sprint("change ", n))
		events = append(events, &e)
	}
	_ = bus.Publish(ctx, "ledger", events...)
	<-done
	fmt.Println(strings.Join(got, ", "))
	// Output: change 1, change 2, change 3, change 4
}

// LatestWins skips updates older than the state already applied.
func ExampleLatestWins() {
	lw, _ := sequence.LatestWins(sequence.NewMemoryStore())
	h := lw(crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		fmt.Println("applied price", e.Subject())
		return nil
	}))
	for _, n := range []uint64{1, 3, 2} {
		e := crossbus.NewEvent("com.example.price.changed", "/catalog")
		crossbus.SetPartitionKey(&e, "sku-42")
		e.SetExtension(crossbus.ExtSequence, sequence.Format(n))
		e.SetSubject(fmt.Sprint("v", n))
		_ = h.Handle(context.Background(), &e)
	}
	// Output:
	// applied price v1
	// applied price v3
}
