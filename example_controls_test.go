package crossbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// A BatchPublisher turns many small concurrent publishes into few sends;
// each caller still gets its own result.
func ExampleNewBatchPublisher() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	var mem *memory.Provider
	bus.As(&mem)
	_ = mem.CreateSubscription(ctx, "clicks", "analytics", false)

	bp, _ := crossbus.NewBatchPublisher(bus, crossbus.BatchPublisherOptions{MaxCount: 50, Linger: 5 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() { // many request handlers, each publishing one click
			defer wg.Done()
			e := crossbus.NewEvent("com.example.click", "/web")
			errs[i] = bp.Publish(ctx, "clicks", &e)
		}()
	}
	wg.Wait()
	_ = bp.Close(ctx)
	st, _ := mem.Stats("clicks", "analytics")
	fmt.Println("events on the topic:", st.Waiting, "errors:", errors.Join(errs...))
	// Output: events on the topic: 20 errors: <nil>
}

// A Sequencer numbers each key's events; the numbers sort as strings too.
func ExampleSequencer() {
	seq := crossbus.NewSequencer()
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
	reseq, _ := crossbus.Resequence(crossbus.ResequenceOptions{GapTimeout: 30 * time.Second})

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
		e.SetExtension(crossbus.ExtSequence, crossbus.FormatSequence(n))
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
	lw, _ := crossbus.LatestWins(crossbus.NewMemorySequenceStore())
	h := lw(crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		fmt.Println("applied price", e.Subject())
		return nil
	}))
	for _, n := range []uint64{1, 3, 2} {
		e := crossbus.NewEvent("com.example.price.changed", "/catalog")
		crossbus.SetPartitionKey(&e, "sku-42")
		e.SetExtension(crossbus.ExtSequence, crossbus.FormatSequence(n))
		e.SetSubject(fmt.Sprint("v", n))
		_ = h.Handle(context.Background(), &e)
	}
	// Output:
	// applied price v1
	// applied price v3
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
