package crossbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

// A batch handler writes many events in one round trip and reports a result
// per event: the poisoned one is dead-lettered alone.
func ExampleRouter_HandleBatch() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)

	done := make(chan struct{})
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		panic(err)
	}
	_ = r.HandleBatch("readings", "warehouse", crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
		errs := make([]error, len(events))
		for i, e := range events {
			if e.Subject() == "garbled" {
				errs[i] = crossbus.Permanent(errors.New("unreadable reading"))
			}
		}
		fmt.Printf("inserted %d readings in one statement\n", len(events)-1)
		close(done)
		return errs
	}), crossbus.WithBatch(5, time.Minute))
	runCtx, stop := context.WithCancel(ctx)
	go r.Run(runCtx)
	defer stop()
	<-r.Ready()

	var events []*crossbus.Event
	for _, subject := range []string{"s1", "s2", "garbled", "s3", "s4"} {
		e := crossbus.NewEvent("com.example.reading", "/sensors")
		e.SetSubject(subject)
		events = append(events, &e)
	}
	_ = bus.Publish(ctx, "readings", events...)
	<-done
	var mem *memory.Provider
	bus.As(&mem)
	for {
		if dead, _ := mem.DeadLetters("readings", "warehouse"); len(dead) == 1 {
			fmt.Println("dead-lettered:", dead[0].Subject())
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Output:
	// inserted 4 readings in one statement
	// dead-lettered: garbled
}

// A rate limit takes events from the provider no faster than allowed; a
// fake clock shows the pacing without waiting for it.
func ExampleWithRateLimit() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	clk := clocktest.New(time.Time{})
	start := clk.Now()

	handled := make(chan string, 3)
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		panic(err)
	}
	_ = r.Handle("emails", "sender", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		handled <- e.Subject()
		return nil
	}), crossbus.WithRateLimit(2, 1), crossbus.WithClock(clk), crossbus.WithConcurrency(1))
	runCtx, stop := context.WithCancel(ctx)
	go r.Run(runCtx)
	defer stop()
	<-r.Ready()

	var events []*crossbus.Event
	for _, to := range []string{"ada", "grace", "edsger"} {
		e := crossbus.NewEvent("com.example.email", "/mailer")
		e.SetSubject(to)
		events = append(events, &e)
	}
	_ = bus.Publish(ctx, "emails", events...)
	for i := range 3 {
		if i > 0 {
			_ = clk.BlockUntil(ctx, 1)          // the route waits for a token
			clk.Advance(500 * time.Millisecond) // one token per 500ms
		}
		fmt.Printf("%v: sent to %s\n", clk.Since(start), <-handled)
	}
	// Output:
	// 0s: sent to ada
	// 500ms: sent to grace
	// 1s: sent to edsger
}

// A circuit breaker stops calling a failing downstream, then probes it and
// closes again; the state changes are observable.
func ExampleWithCircuitBreaker() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	clk := clocktest.New(time.Time{})

	var mu sync.Mutex
	down := true
	closed := make(chan struct{})
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		panic(err)
	}
	_ = r.Handle("payments", "psp", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("payment provider: 503")
		}
		return nil
	}), crossbus.WithClock(clk), crossbus.WithConcurrency(1),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 10, InitialBackoff: crossbus.NoBackoff, Multiplier: 1}),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{
			ConsecutiveFailures: 3,
			OpenFor:             time.Minute,
			OnStateChange: func(c crossbus.BreakerStateChange) {
				fmt.Printf("%s -> %s: %s\n", c.From, c.To, c.Reason)
				if c.To == crossbus.BreakerClosed {
					close(closed)
				}
			},
		}))
	runCtx, stop := context.WithCancel(ctx)
	go r.Run(runCtx)
	defer stop()
	<-r.Ready()

	_ = bus.Publish(ctx, "payments", mkEvents(5)...)
	_ = clk.BlockUntil(ctx, 1) // open: the route waits, the events stay put
	mu.Lock()
	down = false
	mu.Unlock()
	clk.Advance(time.Minute)
	<-closed
	// Output:
	// closed -> open: 3 consecutive failures
	// open -> half-open: open for 1m0s
	// half-open -> closed: 1 probe(s) succeeded
}

// A push adapter with partial batch responses (a Lambda SQS trigger) hands
// the batch to DeliverBatch and reports the nacked items back.
func ExampleEndpoint_DeliverBatch() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	ep, _ := bus.NewBatchEndpoint("orders", "lambda", crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
		errs := make([]error, len(events))
		for i, e := range events {
			if e.Subject() == "o-2" {
				errs[i] = errors.New("inventory service timeout")
			}
		}
		return errs
	}), crossbus.WithDeadLetterTopic("orders-dlq"))

	var items []*driver.PushDelivery
	var batch []driver.Delivery
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		e := crossbus.NewEvent("com.example.order.placed", "/shop")
		e.SetSubject(id)
		d := driver.NewPushDelivery(&e, 1) // the platform's receive count
		items, batch = append(items, d), append(batch, d)
	}
	ep.DeliverBatch(ctx, batch)
	for _, d := range items {
		o, _ := d.Outcome()
		fmt.Println(d.Event().Subject(), o)
	}
	// Output:
	// o-1 acked
	// o-2 nacked
	// o-3 acked
}
