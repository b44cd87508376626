package sourcing_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

func ExampleStore_Append() {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	opened := crossbus.NewEvent("account.opened", "/bank")
	res, _ := store.Append(ctx, "account-7", sourcing.NoStream, &opened)
	fmt.Println("version", res.Version)

	// A writer that read version 0 loses the race: the conflict says where
	// the stream really is.
	late := crossbus.NewEvent("account.renamed", "/bank")
	_, err := store.Append(ctx, "account-7", sourcing.Exactly(0), &late)
	var conflict *sourcing.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict, actual version", conflict.Actual)
	}
	// Output:
	// version 1
	// conflict, actual version 1
}

func ExampleAggregate() {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	type balance struct{ Cents int }
	agg := &sourcing.Aggregate[balance]{
		Store: store,
		Apply: func(b balance, r sourcing.Record) (balance, error) {
			d, err := crossbus.DataAs[map[string]int](r.Event)
			b.Cents += d["cents"]
			return b, err
		},
		Snapshots:     store,
		SnapshotEvery: 100,
	}
	deposit := func(cents int) func(balance) ([]*crossbus.Event, error) {
		return func(balance) ([]*crossbus.Event, error) {
			e := crossbus.NewEvent("deposited", "/bank")
			err := crossbus.SetData(&e, map[string]int{"cents": cents})
			return []*crossbus.Event{&e}, err
		}
	}
	_, _, _ = agg.Execute(ctx, "account-7", deposit(500))
	st, _, _ := agg.Execute(ctx, "account-7", deposit(250))
	fmt.Println(st.Value.Cents, "at version", st.Version)
	// Output: 750 at version 2
}

func ExampleRelay() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	got := make(chan string, 1)
	sub, _ := bus.Subscribe(ctx, "accounts", "audit", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		got <- e.Type() + " for " + crossbus.PartitionKey(e)
		return nil
	}))
	defer sub.Close(ctx)

	// Appends enqueue their events in the outbox in the same step; the relay
	// publishes them.
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{Outbox: sourcing.ToTopic("accounts")})
	e := crossbus.NewEvent("account.opened", "/bank")
	_, _ = store.Append(ctx, "account-7", sourcing.NoStream, &e)
	n, _ := (&sourcing.Relay{Outbox: store, Bus: bus}).Flush(ctx)
	fmt.Println("relayed", n)
	fmt.Println(<-got)
	// Output:
	// relayed 1
	// account.opened for account-7
}
