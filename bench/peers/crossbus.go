package peers

import (
	"context"
	"errors"
	"fmt"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/memory" // mem://
)

type memVariant int

const (
	memPlain memVariant = iota
	memIdempotency
	memOrdered
	memFilter
	memRetry
)

// orderedKeys is how many partition keys the ordered scenario spreads its
// events over.
const orderedKeys = 100

// crossbusRunner is a bus with one route running under a Router.
type crossbusRunner struct {
	bus     *crossbus.Bus
	t       *tracker
	cfg     Config
	keys    []string // partition keys, when ordered
	batch   int      // events per publish call
	stop    context.CancelFunc
	done    chan error
	publish func(ctx context.Context, i, k int) error
}

func openCrossbusMem(v memVariant) func(context.Context, Config) (Runner, error) {
	return func(ctx context.Context, cfg Config) (Runner, error) {
		bus, err := crossbus.Open(ctx, "mem://")
		if err != nil {
			return nil, err
		}
		opts := []crossbus.RouteOption{crossbus.WithConcurrency(cfg.Concurrency)}
		var keys []string
		switch v {
		case memIdempotency:
			opts = append(opts, crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
		case memOrdered:
			opts = append(opts, crossbus.WithOrdering())
			for k := range orderedKeys {
				keys = append(keys, fmt.Sprintf("customer-%d", k))
			}
		case memFilter:
			opts = append(opts, crossbus.WithFilter(crossbus.TypeIs(eventType)))
		case memRetry:
			opts = append(opts, crossbus.WithRetry(crossbus.DefaultRetryPolicy()))
		}
		r, err := startCrossbus(ctx, bus, cfg, keys, opts)
		if err != nil {
			_ = bus.Close(ctx)
			return nil, err
		}
		r.publish, r.batch = r.publishOne, 1
		return r, nil
	}
}

func startCrossbus(ctx context.Context, bus *crossbus.Bus, cfg Config, keys []string, opts []crossbus.RouteOption) (*crossbusRunner, error) {
	t := newTracker()
	router, err := crossbus.NewRouter(bus)
	if err != nil {
		return nil, err
	}
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		t.handle()
		return nil // ack
	})
	if err := router.Handle("orders", "billing", h, opts...); err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(runCtx) }()
	select {
	case <-router.Ready():
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	if err := router.Err(); err != nil {
		stop()
		return nil, err
	}
	return &crossbusRunner{bus: bus, t: t, cfg: cfg, keys: keys, stop: stop, done: done}, nil
}

// publishOne builds and publishes event i on its own (k is 1).
func (r *crossbusRunner) publishOne(ctx context.Context, i, _ int) error {
	e := crossbus.NewEvent(eventType, eventSource) // fresh UUIDv7 id and time
	e.SetDataContentType("application/json")
	if err := crossbus.SetData(&e, payload); err != nil {
		return err
	}
	if r.keys != nil {
		crossbus.SetPartitionKey(&e, r.keys[i%len(r.keys)])
	}
	return r.bus.Publish(ctx, "orders", &e)
}

// publishBatch builds events i..i+k-1 and publishes them in one call.
func (r *crossbusRunner) publishBatch(ctx context.Context, i, k int) error {
	evs := make([]crossbus.Event, k)
	ptrs := make([]*crossbus.Event, k)
	for j := range evs {
		evs[j] = crossbus.NewEvent(eventType, eventSource)
		evs[j].SetDataContentType("application/json")
		if err := crossbus.SetData(&evs[j], payload); err != nil {
			return err
		}
		ptrs[j] = &evs[j]
	}
	return r.bus.Publish(ctx, "orders", ptrs...)
}

func (r *crossbusRunner) Run(ctx context.Context, n int) error {
	return drive(r.t, n, r.batch, r.cfg.Window, func(i, k int) error { return r.publish(ctx, i, k) })
}

func (r *crossbusRunner) Close(ctx context.Context) error {
	r.stop()
	err := <-r.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, r.bus.Close(ctx))
}
