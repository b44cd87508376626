package crossbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

// oneAtATime hands out one delivery per Receive, as a provider does whose
// buffer holds one message when Receive is called.
type oneAtATime struct{ *memory.Provider }

func (p oneAtATime) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	r, err := p.Provider.Subscribe(ctx, spec)
	return oneReceiver{r}, err
}

type oneReceiver struct{ driver.Receiver }

func (r oneReceiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	return r.Receiver.Receive(ctx, buf[:1])
}

// Once a route's workers went idle, a receive that returns one event must
// still leave a worker receiving: every event reaches a free handler.
func TestIdleWorkersTakeOverReceiving(t *testing.T) {
	ctx := testCtx(t)
	mp := memory.New(memory.Options{AutoCreate: true})
	bus, err := crossbus.New(oneAtATime{mp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	var running atomic.Int32
	var block atomic.Bool
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	overlap := make(chan struct{})
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		running.Add(1)
		defer running.Add(-1)
		if block.Load() {
			<-release
		} else {
			<-overlap // the first handlers overlap, so the route starts its workers
		}
		return nil
	}), crossbus.WithConcurrency(4), crossbus.WithPrefetch(4), crossbus.WithDeadLetterTopic("dead-letters"))
	require.NoError(t, err)

	require.NoError(t, bus.Publish(ctx, "orders", mkEvents(4)...))
	waitUntil(t, "four overlapping handlers", func() bool { return running.Load() == 4 })
	close(overlap)
	waitUntil(t, "the workers idle", func() bool { return running.Load() == 0 })
	time.Sleep(50 * time.Millisecond) // let them reach their wait

	block.Store(true)
	require.NoError(t, bus.Publish(ctx, "orders", mkEvents(4)...))
	waitUntil(t, "four handlers for four events", func() bool { return running.Load() == 4 })
}
