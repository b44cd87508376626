package gcp_test

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp"
)

// Publish and handle events on Pub/Sub. The example runs against pstest,
// the in-process fake; against Google Cloud the URL is just
// "gcppubsub://projects/my-project" (credentials from the environment).
func Example() {
	srv := pstest.NewServer()
	defer srv.Close()
	ctx := context.Background()

	bus, err := crossbus.Open(ctx, "gcppubsub://projects/my-project?endpoint="+srv.Addr+"&insecure=true&publishdelay=1ms")
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	// Provisioning, usually done with infrastructure tooling.
	var p *gcp.Provider
	bus.As(&p)
	if err := p.CreateTopic(ctx, "orders"); err != nil {
		panic(err)
	}
	err = p.CreateSubscription(ctx, "orders", "billing", gcp.SubscriptionConfig{
		Ordered:         true,
		DeadLetterTopic: "orders-dead-letters", // native dead-lettering
		Filter:          `hasPrefix(attributes.ce-type, "com.example.order.")`,
	})
	if err != nil {
		panic(err)
	}

	done := make(chan struct{})
	sub, err := bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		fmt.Println("billing", e.Type(), "for", crossbus.PartitionKey(e))
		close(done)
		return nil
	}), crossbus.WithOrdering())
	if err != nil {
		panic(err)
	}
	defer sub.Close(ctx)

	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	crossbus.SetPartitionKey(&e, "customer-9")
	if err := bus.Publish(ctx, "orders", &e); err != nil {
		panic(err)
	}
	<-done
	// Output: billing com.example.order.placed for customer-9
}
