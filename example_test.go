package crossbus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/memory" // registers mem://
)

// Open a bus by URL, publish an event and handle it with a router.
func ExampleOpen() {
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	handled := make(chan string, 1)
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		panic(err)
	}
	_ = r.Handle("signups", "welcome-email", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		handled <- e.Type()
		return nil
	}))
	runCtx, stop := context.WithCancel(ctx)
	go r.Run(runCtx)
	defer stop()
	<-r.Ready()

	e := crossbus.NewEvent("com.example.user.signedup", "/accounts")
	_ = crossbus.SetData(&e, map[string]string{"email": "ada@example.com"})
	if err := bus.Publish(ctx, "signups", &e); err != nil {
		panic(err)
	}
	fmt.Println(<-handled)
	// Output: com.example.user.signedup
}

// Typed handlers receive the event's data decoded into their parameter type;
// data that does not decode is dead-lettered instead of retried.
func ExampleTyped() {
	type Payment struct {
		Order  string `json:"order"`
		Amount int    `json:"amount"`
	}
	h := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, p Payment) error {
		fmt.Printf("charge %s: %d\n", p.Order, p.Amount)
		return nil
	})
	e := crossbus.NewEvent("com.example.payment.requested", "/checkout")
	_ = crossbus.SetData(&e, Payment{Order: "o-7", Amount: 1999})
	_ = h.Handle(context.Background(), &e)

	bad := crossbus.NewEvent("com.example.payment.requested", "/checkout")
	bad.SetData("application/json", []byte(`"not an object"`))
	err := h.Handle(context.Background(), &bad)
	fmt.Println("permanent:", crossbus.IsPermanent(err))
	// Output:
	// charge o-7: 1999
	// permanent: true
}

// Publish reports exactly which events of a batch were refused, so a caller
// can fix or retry just those.
func ExampleBus_Publish() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)

	good := crossbus.NewEvent("com.example.ok", "/src")
	bad := crossbus.NewEvent("com.example.bad", "/src")
	bad.SetExtension("Tenant", "acme") // the SDK lower-cases it: valid
	noType := crossbus.NewEvent("", "/src")

	err := bus.Publish(ctx, "events", &good, &bad, &noType)
	var pe *crossbus.PublishError
	if errors.As(err, &pe) {
		fmt.Println("failed:", pe.FailedIndexes())
		fmt.Println(errors.Is(err, crossbus.ErrInvalidEvent))
	}
	// Output:
	// failed: [2]
	// true
}

// A retry policy: exponential backoff, then the dead-letter queue. (Jitter,
// 20% by default, is turned off here so the delays print exactly.)
func ExampleWithRetry() {
	policy := crossbus.RetryPolicy{
		MaxAttempts:    5,
		InitialBackoff: 500 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		Multiplier:     2,
		Jitter:         crossbus.NoJitter,
	}
	for attempt := 1; attempt < policy.MaxAttempts; attempt++ {
		fmt.Printf("after attempt %d wait %v\n", attempt, policy.Backoff(attempt))
	}
	_ = crossbus.WithRetry(policy) // pass to Router.Handle or Bus.Subscribe
	// Output:
	// after attempt 1 wait 500ms
	// after attempt 2 wait 1s
	// after attempt 3 wait 2s
	// after attempt 4 wait 4s
}
