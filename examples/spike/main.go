// Command spike shows a traffic spike absorbed by crossbus's load controls on
// the embedded in-memory provider: a burst of orders lands at once on a slow
// downstream service, which then has an outage. A rate limit paces how fast
// the route takes events from the provider, a circuit breaker stops calling
// the downstream while it fails (the waiting events keep their leases and
// spend no retry attempts), and every event is handled in the end: none is
// lost or dead-lettered.
//
//	go run ./examples/spike
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

// Config shapes the scenario.
type Config struct {
	Orders       int           // published at once: the spike
	Rate         float64       // the route's rate limit, events per second
	Burst        int           // and its burst
	Workers      int           // handlers at once (the downstream's connection pool)
	CallTime     time.Duration // how long one downstream call takes
	OutageAfter  int           // the downstream fails from this call on...
	OutageFor    time.Duration // ...for this long
	OpenAfter    int           // consecutive failures that open the breaker
	OpenFor      time.Duration // how long it stays open before probing
	Report       time.Duration // progress line interval
	MaxAttempts  int           // the retry policy's attempts before dead-lettering
	RetryBackoff time.Duration // its first backoff
}

// DefaultConfig finishes in about three seconds.
func DefaultConfig() Config {
	return Config{Orders: 400, Rate: 200, Burst: 20, Workers: 4, CallTime: 10 * time.Millisecond,
		OutageAfter: 120, OutageFor: 800 * time.Millisecond, OpenAfter: 5, OpenFor: 300 * time.Millisecond,
		Report: 250 * time.Millisecond, MaxAttempts: 5, RetryBackoff: 50 * time.Millisecond}
}

// Result is how the run ended.
type Result struct {
	Published, Handled, DeadLettered, Lost int
	Calls, FailedCalls                     int64
	MaxConcurrent                          int64
	BreakerOpened                          int
	Elapsed                                time.Duration
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := run(ctx, os.Stdout, DefaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "spike:", err)
		os.Exit(1)
	}
	if res.Lost > 0 || res.DeadLettered > 0 {
		os.Exit(1)
	}
}

// downstream is a slow service with a limited pool and an outage.
type downstream struct {
	cfg         Config
	calls       atomic.Int64
	failed      atomic.Int64
	inside, max atomic.Int64
	mu          sync.Mutex
	outageEnds  time.Time // zero until the outage starts
	onOutage    func()
}

var errUnavailable = errors.New("503 service unavailable")

func (d *downstream) call(ctx context.Context) error {
	n := d.calls.Add(1)
	in := d.inside.Add(1)
	defer d.inside.Add(-1)
	for m := d.max.Load(); in > m && !d.max.CompareAndSwap(m, in); m = d.max.Load() {
	}
	d.mu.Lock()
	if d.outageEnds.IsZero() && n >= int64(d.cfg.OutageAfter) {
		d.outageEnds = time.Now().Add(d.cfg.OutageFor)
		d.onOutage()
	}
	down := time.Now().Before(d.outageEnds)
	d.mu.Unlock()
	if down {
		d.failed.Add(1)
		return errUnavailable
	}
	select {
	case <-time.After(d.cfg.CallTime):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tracer prints timestamped lines from several goroutines.
type tracer struct {
	mu    sync.Mutex
	out   io.Writer
	start time.Time
}

func (t *tracer) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "%6.2fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, out io.Writer, cfg Config) (Result, error) {
	res := Result{Published: cfg.Orders}
	bus, err := crossbus.Open(ctx, "mem://")
	if err != nil {
		return res, err
	}
	defer bus.Close(context.Background())
	var mem *memory.Provider
	bus.As(&mem)

	tr := &tracer{out: out, start: time.Now()}
	ds := &downstream{cfg: cfg, onOutage: func() {
		tr.printf("downstream outage: every call fails with %q for %v", errUnavailable, cfg.OutageFor)
	}}
	var handled sync.Map // order id -> true
	var handledN atomic.Int64
	var opened atomic.Int32

	r, err := crossbus.NewRouter(bus)
	if err != nil {
		return Result{}, err
	}
	err = r.Handle("orders", "fulfilment", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if err := ds.call(ctx); err != nil {
			return err
		}
		if _, dup := handled.LoadOrStore(e.ID(), true); !dup {
			handledN.Add(1)
		}
		return nil
	}),
		crossbus.WithConcurrency(cfg.Workers), crossbus.WithPrefetch(1),
		crossbus.WithRateLimit(cfg.Rate, cfg.Burst),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{
			ConsecutiveFailures: cfg.OpenAfter, OpenFor: cfg.OpenFor,
			OnStateChange: func(c crossbus.BreakerStateChange) {
				if c.To == crossbus.BreakerOpen {
					opened.Add(1)
				}
				tr.printf("breaker %s -> %s (%s)", c.From, c.To, c.Reason)
			},
		}),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: cfg.MaxAttempts, InitialBackoff: cfg.RetryBackoff,
			MaxBackoff: 10 * cfg.RetryBackoff, Multiplier: 2, Jitter: 0.2}),
	)
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	running := make(chan error, 1)
	go func() { running <- r.Run(runCtx) }()
	select {
	case <-r.Ready():
	case err := <-running:
		return res, err
	}

	fmt.Fprintf(out, "spike: %d orders at once; downstream takes %v per call, %d calls at a time, and fails for %v from call %d\n",
		cfg.Orders, cfg.CallTime, cfg.Workers, cfg.OutageFor, cfg.OutageAfter)
	fmt.Fprintf(out, "route: rate limit %g/s (burst %d); breaker opens after %d failures in a row, for %v; %d attempts per event\n\n",
		cfg.Rate, cfg.Burst, cfg.OpenAfter, cfg.OpenFor, cfg.MaxAttempts)
	events := make([]*crossbus.Event, cfg.Orders)
	for i := range events {
		e := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com")
		if err := crossbus.SetData(&e, map[string]int{"order": i + 1}); err != nil {
			return res, err
		}
		events[i] = &e
	}
	tr.start = time.Now()
	if err := bus.Publish(ctx, "orders", events...); err != nil {
		return res, err
	}
	tr.printf("published %d orders", cfg.Orders)

	tick := time.NewTicker(cfg.Report)
	defer tick.Stop()
	last, lastAt := int64(0), time.Now()
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		st, err := mem.Stats("orders", "fulfilment")
		if err != nil {
			return res, err
		}
		done = st.Waiting+st.Delayed+st.InFlight == 0
		state, _ := r.BreakerState("orders", "fulfilment")
		h := handledN.Load()
		rate := float64(h-last) / time.Since(lastAt).Seconds()
		last, lastAt = h, time.Now()
		tr.printf("handled %3d/%d  %4.0f/s   in provider: %3d waiting, %2d retrying   held: %d   breaker %s",
			h, cfg.Orders, rate, st.Waiting, st.Delayed, st.InFlight, state)
	}
	res.Elapsed = time.Since(tr.start)
	stop()
	if err := <-running; err != nil {
		return res, err
	}
	dead, err := mem.DeadLetters("orders", "fulfilment")
	if err != nil {
		return res, err
	}
	res.Handled = int(handledN.Load())
	res.DeadLettered = len(dead)
	res.Lost = res.Published - res.Handled - res.DeadLettered
	res.Calls, res.FailedCalls, res.MaxConcurrent = ds.calls.Load(), ds.failed.Load(), ds.max.Load()
	res.BreakerOpened = int(opened.Load())
	fmt.Fprintf(out, "\npublished %d, handled %d, dead-lettered %d, lost %d in %.1fs\n",
		res.Published, res.Handled, res.DeadLettered, res.Lost, res.Elapsed.Seconds())
	fmt.Fprintf(out, "downstream: %d calls, %d failed during the outage, at most %d at once; the breaker opened %d time(s)\n",
		res.Calls, res.FailedCalls, res.MaxConcurrent, res.BreakerOpened)
	fmt.Fprintf(out, "average %.0f events/s against a limit of %g/s\n", float64(res.Handled)/res.Elapsed.Seconds(), cfg.Rate)
	return res, nil
}
