package chain_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
	_ "github.com/crossbus/crossbus/providers/memory"
)

// runs counts handler executions per step and kind.
type runs struct {
	mu    sync.Mutex
	n     map[string]int // "step" or "undo:step" -> started runs
	done  map[string]int // completed without error
	order []string       // completion order
	times map[string][]time.Time
}

func newRuns() *runs {
	return &runs{n: map[string]int{}, done: map[string]int{}, times: map[string][]time.Time{}}
}

func (r *runs) start(name string) {
	r.mu.Lock()
	r.n[name]++
	r.times[name] = append(r.times[name], time.Now())
	r.mu.Unlock()
}

func (r *runs) finish(name string) {
	r.mu.Lock()
	r.done[name]++
	r.order = append(r.order, name)
	r.mu.Unlock()
}

func (r *runs) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[name]
}

func (r *runs) completed(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[name]
}

func (r *runs) completionOrder() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// counted wraps a handler so that runs records its executions.
func counted(r *runs, name string, h chain.Handler) chain.Handler {
	out := chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
		r.start(name)
		v, err := h.Do(ctx, in)
		if err == nil {
			r.finish(name)
		}
		return v, err
	}}
	if h.Undo != nil {
		out.Undo = func(ctx context.Context, in *chain.Input) error {
			r.start("undo:" + name)
			err := h.Undo(ctx, in)
			if err == nil {
				r.finish("undo:" + name)
			}
			return err
		}
	}
	return out
}

func ok(output any) func(context.Context, *chain.Input) (any, error) {
	return func(context.Context, *chain.Input) (any, error) { return output, nil }
}

func undoOK(context.Context, *chain.Input) error { return nil }

// fastRetry retries quickly, so tests run in milliseconds.
var fastRetry = chain.RetryPolicy{MaxAttempts: 3, InitialInterval: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}

// env is one "process": a bus, a worker and a coordinator over a store.
type env struct {
	bus   *crossbus.Bus
	coord *chain.Coordinator
	work  *chain.Worker
}

func openBus(t *testing.T) *crossbus.Bus {
	t.Helper()
	b, err := crossbus.Open(context.Background(), "mem://")
	require.NoError(t, err)
	return b
}

// start starts a worker and a coordinator for def on bus (the worker first,
// so no command is published before its subscription exists).
func start(t *testing.T, bus chain.Bus, def *chain.Definition, store chain.Store, handlers map[string]chain.Handler, wopts chain.WorkerOptions, copts chain.CoordinatorOptions) (*chain.Coordinator, *chain.Worker) {
	t.Helper()
	ctx := context.Background()
	w, err := chain.NewWorker(def, bus, store, handlers, wopts)
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	c, err := chain.NewCoordinator(def, bus, store, copts)
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	return c, w
}

func newEnv(t *testing.T, def *chain.Definition, store chain.Store, handlers map[string]chain.Handler) *env {
	t.Helper()
	bus := openBus(t)
	c, w := start(t, bus, def, store, handlers, chain.WorkerOptions{}, chain.CoordinatorOptions{})
	e := &env{bus: bus, coord: c, work: w}
	t.Cleanup(func() { e.stop(t) })
	return e
}

func (e *env) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.coord.Close(ctx)
	_ = e.work.Close(ctx)
	_ = e.bus.Close(ctx)
}

func wait(t *testing.T, c *chain.Coordinator, id string) *chain.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst, err := c.Wait(ctx, id)
	require.NoError(t, err, "instance %s did not finish; last state %+v", id, inst)
	return inst
}

// dupBus publishes every event twice: duplicate deliveries, as
// at-least-once buses produce.
type dupBus struct {
	*crossbus.Bus
	types map[string]bool
}

func (d *dupBus) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	if err := d.Bus.Publish(ctx, topic, events...); err != nil {
		return err
	}
	var again []*crossbus.Event
	for _, e := range events {
		if d.types[e.Type()] {
			again = append(again, e)
		}
	}
	if len(again) == 0 {
		return nil
	}
	return d.Bus.Publish(ctx, topic, again...)
}
