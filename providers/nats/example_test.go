package nats_test

import (
	"context"
	"fmt"
	"os"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/nats"
)

// Open an embedded, durable bus: a JetStream server runs inside the program
// and keeps its streams in the directory, so events survive a restart. Point
// the URL at a NATS cluster ("nats://host:4222") when one machine is no
// longer enough.
func Example() {
	dir, err := os.MkdirTemp("", "crossbus-nats-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "nats+embedded://"+dir)
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	done := make(chan struct{})
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.Typed(func(ctx context.Context, e *crossbus.Event, order map[string]int) error {
		fmt.Println("billing order", order["id"], "from", e.Source())
		close(done)
		return nil
	}))
	if err != nil {
		panic(err)
	}
	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	_ = crossbus.SetData(&e, map[string]int{"id": 42})
	if err := bus.Publish(ctx, "orders", &e); err != nil {
		panic(err)
	}
	<-done
	// Output: billing order 42 from /shop
}
