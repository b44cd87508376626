// Command quickstart shows crossbus's delivery contract on the embedded
// in-memory provider: a route handles orders, a failure is retried, a poison
// event is dead-lettered, and a duplicate delivery is skipped.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

// Order is the data of a com.example.order.placed event.
type Order struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := crossbus.Open(ctx, "mem://")
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
	defer bus.Close(context.Background())
	if _, err := run(ctx, bus, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// Result is what the run ended with, for tests.
type Result struct {
	Handled      []string // order ids handled successfully
	Attempts     map[string]int
	DeadLettered []string
}

// run runs the demo on bus, a bus over a memory provider (mem://, or the
// test kit's).
func run(ctx context.Context, bus *crossbus.Bus, out io.Writer) (Result, error) {
	res := Result{Attempts: map[string]int{}}
	out = &syncWriter{w: out} // handlers print concurrently

	var mu sync.Mutex
	done := make(chan struct{}, 16)
	billing := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, o Order) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		mu.Lock()
		res.Attempts[o.ID]++
		mu.Unlock()
		switch {
		case o.Amount < 0:
			fmt.Fprintf(out, "billing: order %s has a negative amount: giving up (permanent)\n", o.ID)
			return crossbus.Permanent(errors.New("negative amount"))
		case o.ID == "o-2" && info.Attempt < 3:
			fmt.Fprintf(out, "billing: order %s attempt %d: payment service unavailable, will retry\n", o.ID, info.Attempt)
			return errors.New("payment service unavailable")
		}
		fmt.Fprintf(out, "billing: charged order %s: %d cents (attempt %d)\n", o.ID, o.Amount, info.Attempt)
		mu.Lock()
		res.Handled = append(res.Handled, o.ID)
		mu.Unlock()
		done <- struct{}{}
		return nil
	})

	r, err := crossbus.NewRouter(bus)
	if err != nil {
		return Result{}, err
	}
	err = r.Handle("orders", "billing", billing,
		crossbus.WithFilter(crossbus.TypeIs("com.example.order.placed")),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, Jitter: 0.2}),
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}),
	)
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	running := make(chan error, 1)
	go func() { running <- r.Run(runCtx) }()
	select { // subscriptions open
	case <-r.Ready():
	case err := <-running:
		return res, err
	}

	var events []*crossbus.Event
	for _, o := range []Order{{"o-1", 1250}, {"o-2", 990}, {"o-3", -5}} {
		e := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com")
		if err := crossbus.SetData(&e, o); err != nil {
			return res, err
		}
		events = append(events, &e)
	}
	// o-1 is published twice with the same id: a duplicate delivery.
	events = append(events, events[0])
	fmt.Fprintf(out, "publishing %d events (o-1 twice, as a broker may redeliver it)\n", len(events))
	if err := bus.Publish(ctx, "orders", events...); err != nil {
		return res, err
	}
	for range 2 {
		select {
		case <-done:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	var mem *memory.Provider
	if !bus.As(&mem) {
		return res, errors.New("the bus is not over a memory provider")
	}
	for ctx.Err() == nil {
		if st, _ := mem.Stats("orders", "billing"); st.Waiting+st.InFlight+st.Delayed == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-running; err != nil {
		return res, err
	}
	dead, err := mem.DeadLetters("orders", "billing")
	if err != nil {
		return res, err
	}
	for _, d := range dead {
		info, _ := crossbus.DeadLetterInfoOf(&d)
		o, _ := crossbus.DataAs[Order](&d)
		res.DeadLettered = append(res.DeadLettered, o.ID)
		fmt.Fprintf(out, "dead-letter queue: order %s after %d attempt(s): %s\n", o.ID, info.Attempts, info.Reason)
	}
	fmt.Fprintf(out, "order o-1 was delivered twice and charged %d time(s)\n", res.Attempts["o-1"])
	return res, nil
}

// syncWriter serialises writes from concurrent handlers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
