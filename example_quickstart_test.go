package crossbus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/memory" // registers mem://
)

// Order is the data of the quick start's events.
type Order struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// The README's quick start, as it is written there: open a bus, add a route,
// run the router, publish, and shut down.
func Example_quickStart() {
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "mem://") // or nats+embedded:///dir (durable), gcppubsub://, azuresb://, ...
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	// Consume: a route is a topic's subscription, a handler and its options.
	// Add routes before publishing: a subscription receives the events
	// published after it exists.
	charged := make(chan Order, 1)
	r, err := crossbus.NewRouter(bus, crossbus.WithTimeout(10*time.Second))
	if err != nil {
		panic(err)
	}
	err = r.Handle("orders", "billing",
		crossbus.Typed(func(ctx context.Context, e *crossbus.Event, o Order) error {
			charged <- o // nil acks; an error retries; crossbus.Permanent(err) dead-letters
			return nil
		}),
		crossbus.WithFilter(crossbus.TypeIs("com.example.order.placed")),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5}), // zero fields: backoff 1s doubling to 1m, 20% jitter
		crossbus.WithConcurrency(16),
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}), // or a durable store
	)
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }() // blocks until runCtx ends, then drains
	<-r.Ready()
	if err := r.Err(); err != nil {
		panic(err)
	}

	// Publish: events are CloudEvents 1.0.
	e := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com")
	if err := crossbus.SetData(&e, Order{ID: "o-1", Amount: 1250}); err != nil {
		panic(err)
	}
	crossbus.SetPartitionKey(&e, "customer-42") // optional ordering key
	if err := bus.Publish(ctx, "orders", &e); err != nil {
		panic(err)
	}

	fmt.Printf("charged %+v\n", <-charged)
	stop()
	fmt.Println("router stopped:", <-done)
	// Output:
	// charged {ID:o-1 Amount:1250}
	// router stopped: <nil>
}
