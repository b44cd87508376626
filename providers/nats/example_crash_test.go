package nats_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/sequence"
)

// An ordered route keeps a key's order while one process consumes it. When
// that process crashes, JetStream redelivers the events it had not settled
// once their ack wait ends, after the newer events of the same key that the
// process taking over has received meanwhile, so order across a crash is not
// kept (Capabilities.Ordering is false). The recipe: the publisher stamps a
// per-key sequence (sequence.Stamper) and the route applies events through
// sequence.LatestWins with a store every process shares (stores/postgres or
// stores/redis in production), so a late redelivery never overwrites newer
// state. (Where every event must be applied in order, an unordered route with
// sequence.Resequence and a shared store holds the newer events back until
// the redelivered ones arrive.)
func Example_orderAcrossACrash() {
	dir, err := os.MkdirTemp("", "crossbus-nats-crash")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// The server: embedded in this program, listening for the two consumer
	// processes the example plays. The host bus also publishes.
	host, err := crossbus.Open(ctx, "nats+embedded://"+dir+"?listen=127.0.0.1:-1")
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)
	var srv *server.Server
	host.As(&srv)
	consumerURL := srv.ClientURL() + "?pinnedttl=1s"

	store := sequence.NewMemoryStore() // shared by both processes
	stamper := sequence.NewStamper()
	publish := func(versions ...string) {
		var events []*crossbus.Event
		for _, v := range versions {
			e := crossbus.NewEvent("com.example.price.changed", "/catalog")
			crossbus.SetPartitionKey(&e, "sku-42")
			e.SetSubject(v)
			events = append(events, &e)
		}
		stamper.Stamp(events...)
		if err := host.Publish(ctx, "prices", events...); err != nil {
			panic(err)
		}
	}
	var mu sync.Mutex
	price := ""         // the state the processes keep (a database row)
	var applied []int64 // the sequences written, in order
	apply := func(e *crossbus.Event) {
		seq, _, _ := sequence.Of(e)
		mu.Lock()
		price = e.Subject()
		applied = append(applied, int64(seq))
		mu.Unlock()
	}
	route := func(b *crossbus.Bus, h crossbus.HandlerFunc, seen func(*crossbus.Event)) {
		latest, err := sequence.LatestWins(store)
		if err != nil {
			panic(err)
		}
		saw := func(next crossbus.Handler) crossbus.Handler {
			return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
				seen(e)
				return next.Handle(ctx, e)
			})
		}
		_, err = b.Subscribe(ctx, "prices", "catalog", h, crossbus.WithOrdering(),
			crossbus.WithMiddleware(saw, latest), crossbus.WithAckDeadline(3*time.Second))
		if err != nil {
			panic(err)
		}
	}

	// Process A applies v1, then crashes while it handles v2.
	a, err := crossbus.Open(ctx, consumerURL)
	if err != nil {
		panic(err)
	}
	handlingV2, crashed := make(chan struct{}), make(chan struct{})
	route(a, func(ctx context.Context, e *crossbus.Event) error {
		if e.Subject() == "v1" {
			apply(e)
			return nil
		}
		select {
		case <-handlingV2:
		default:
			close(handlingV2)
		}
		<-crashed
		return errors.New("crashed")
	}, func(*crossbus.Event) {})
	publish("v1", "v2", "v3")
	<-handlingV2

	// Process B waits on the same route; process A dies without settling
	// v2 and v3, and newer prices are published.
	b, err := crossbus.Open(ctx, consumerURL)
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	seenByB := map[string]bool{}
	allSeen := make(chan struct{})
	var allSeenOnce sync.Once
	route(b, func(ctx context.Context, e *crossbus.Event) error {
		apply(e)
		return nil
	}, func(e *crossbus.Event) {
		mu.Lock()
		defer mu.Unlock()
		seenByB[e.Subject()] = true
		if seenByB["v2"] && seenByB["v3"] && seenByB["v4"] && seenByB["v5"] && seenByB["v6"] {
			allSeenOnce.Do(func() { close(allSeen) })
		}
	})
	var conn *natsio.Conn
	a.As(&conn)
	conn.Close() // the crash: no ack, no nack, no unpin
	publish("v4", "v5", "v6")

	// B takes over after the pinned TTL and receives v4 to v6, then v2 and
	// v3 once their ack wait ends; LatestWins skips those two.
	<-allSeen
	close(crashed)
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = a.Close(closeCtx)

	mu.Lock()
	defer mu.Unlock()
	increasing := true
	for i := 1; i < len(applied); i++ {
		increasing = increasing && applied[i] > applied[i-1]
	}
	fmt.Println("price:", price)
	fmt.Println("every write newer than the one before:", increasing)
	// Output:
	// price: v6
	// every write newer than the one before: true
}
