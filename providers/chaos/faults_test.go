package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/chaos"
	"github.com/crossbus/crossbus/providers/memory"
)

// world is a chaos provider over an auto-creating memory provider with a
// short lease, and a bus over it.
type world struct {
	t     *testing.T
	ctx   context.Context
	mem   *memory.Provider
	chaos *chaos.Provider
	bus   *crossbus.Bus
}

func newWorld(t *testing.T, o chaos.Options) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	mem := memory.New(memory.Options{AutoCreate: true, AckDeadline: 300 * time.Millisecond})
	c := chaos.New(mem, o)
	bus, err := crossbus.New(c)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return &world{t: t, ctx: ctx, mem: mem, chaos: c, bus: bus}
}

func (w *world) events(n int, keys int) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		e := crossbus.NewEvent("com.example.chaos.tested", "/chaos")
		_ = crossbus.SetData(&e, map[string]int{"n": i})
		if keys > 0 {
			crossbus.SetPartitionKey(&e, fmt.Sprintf("key-%d", i%keys))
		}
		out[i] = &e
	}
	return out
}

// counter records handler runs per event and their order per key.
type counter struct {
	mu    sync.Mutex
	runs  map[string]int
	order map[string][]int
	all   []int
}

func newCounter() *counter { return &counter{runs: map[string]int{}, order: map[string][]int{}} }

func (c *counter) handler(fail func(e *crossbus.Event) error) crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if fail != nil {
			if err := fail(e); err != nil {
				return err
			}
		}
		d, _ := crossbus.DataAs[map[string]int](e)
		c.mu.Lock()
		c.runs[e.ID()]++
		c.order[crossbus.PartitionKey(e)] = append(c.order[crossbus.PartitionKey(e)], d["n"])
		c.all = append(c.all, d["n"])
		c.mu.Unlock()
		return nil
	})
}

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs)
}

func (c *counter) waitDistinct(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return c.distinct() >= n }, 30*time.Second, 5*time.Millisecond, "handled %d of %d", c.distinct(), n)
}

func (w *world) subscribe(sub string, h crossbus.Handler, opts ...crossbus.RouteOption) {
	w.t.Helper()
	opts = append([]crossbus.RouteOption{crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 20, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})}, opts...)
	s, err := w.bus.Subscribe(w.ctx, "orders", sub, h, opts...)
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func (w *world) drained(sub string) {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		st, err := w.mem.Stats("orders", sub)
		return err == nil && st.Waiting+st.InFlight+st.Delayed == 0
	}, 30*time.Second, 5*time.Millisecond)
}

// Publish errors: the *PublishError lists exactly the failed events, each
// marked transient or permanent; the transient ones succeed when
// published again, and only what was published is delivered.
func TestPublishErrorsAreReportedPerEvent(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 3, PublishError: 0.2, PublishPermanent: 0.05})
	c := newCounter()
	w.subscribe("billing", c.handler(nil))
	evs := w.events(500, 0)
	err := w.bus.Publish(w.ctx, "orders", evs...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	f := w.chaos.Faults()
	require.EqualValues(t, f.PublishErrors+f.PublishPermanent, len(pe.Failed))
	require.Positive(t, f.PublishErrors)
	require.Positive(t, f.PublishPermanent)
	failed := map[int]bool{}
	permanent := 0
	var retry []*crossbus.Event
	for _, e := range pe.Failed {
		failed[e.Index] = true
		assert.Equal(t, evs[e.Index].ID(), e.EventID)
		assert.ErrorIs(t, e.Err, chaos.ErrInjected)
		if crossbus.IsPermanent(e.Err) {
			permanent++
			continue
		}
		retry = append(retry, evs[e.Index])
	}
	assert.EqualValues(t, f.PublishPermanent, permanent)
	// Retry the transient failures until they are all through.
	for len(retry) > 0 {
		err := w.bus.Publish(w.ctx, "orders", retry...)
		var again []*crossbus.Event
		if errors.As(err, &pe) {
			for _, e := range pe.Failed {
				if !crossbus.IsPermanent(e.Err) {
					again = append(again, retry[e.Index])
				} else {
					permanent++
				}
			}
		} else {
			require.NoError(t, err)
		}
		retry = again
	}
	c.waitDistinct(t, len(evs)-permanent)
	w.drained("billing")
	assert.Equal(t, len(evs)-permanent, c.distinct(), "everything published was delivered, nothing else")
}

// Lost acknowledgements: the event comes back after its lease; an
// idempotent route acks the redelivery without running the handler again.
func TestLostAcksAreRedeliveredAndSkippedByIdempotency(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 4, LostAck: 0.3})
	c := newCounter()
	plain := newCounter()
	w.subscribe("billing", c.handler(nil), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	w.subscribe("audit", plain.handler(nil))
	evs := w.events(100, 0)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 100)
	w.drained("billing")
	w.drained("audit")
	assert.Positive(t, w.chaos.Faults().LostAcks)
	for _, e := range evs {
		assert.Equal(t, 1, c.runs[e.ID()], "idempotent route ran %s once", e.ID())
	}
	total := 0
	for _, n := range plain.runs {
		total += n
	}
	assert.Greater(t, total, 100, "without idempotency a lost ack means the handler runs again")
}

// Duplicates: each delivered twice now and then; the idempotent route runs
// each event once.
func TestDuplicatesAreSkippedByIdempotency(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 5, Duplicate: 0.3})
	c := newCounter()
	w.subscribe("billing", c.handler(nil), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}),
		crossbus.WithConcurrency(8))
	evs := w.events(200, 0)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 200)
	w.drained("billing")
	assert.Positive(t, w.chaos.Faults().Duplicates)
	for _, e := range evs {
		assert.Equal(t, 1, c.runs[e.ID()], "event %s ran once", e.ID())
	}
}

// Reordering: events of different keys overtake each other, but an ordered
// route still handles each key's events in publish order.
func TestReorderingKeepsEachKeysOrder(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 6, Reorder: 1, Delay: 0.1, MaxDelay: 20 * time.Millisecond})
	c := newCounter()
	w.subscribe("shipping", c.handler(nil), crossbus.WithOrdering(), crossbus.WithConcurrency(8), crossbus.WithPrefetch(32))
	unordered := newCounter()
	w.subscribe("audit", unordered.handler(nil), crossbus.WithConcurrency(1), crossbus.WithPrefetch(32))
	evs := w.events(400, 8)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 400)
	unordered.waitDistinct(t, 400)
	f := w.chaos.Faults()
	assert.Positive(t, f.Reorders)
	assert.Positive(t, f.Delays)
	for k, seq := range c.order {
		for i := 1; i < len(seq); i++ {
			require.Less(t, seq[i-1], seq[i], "key %s out of order: %v", k, seq)
		}
	}
	// The single-worker unordered route saw the cross-key reordering...
	overtaken := 0
	for i := 1; i < len(unordered.all); i++ {
		if unordered.all[i] < unordered.all[i-1] {
			overtaken++
		}
	}
	assert.Positive(t, overtaken, "events of different keys overtook each other")
	// ...but never within a key.
	for k, seq := range unordered.order {
		for i := 1; i < len(seq); i++ {
			require.Less(t, seq[i-1], seq[i], "key %s out of order on the unordered route: %v", k, seq)
		}
	}
}

// Reordering within a key, when asked: an unordered route sees a key's
// events out of order, and an ordered route on a provider with native key
// order still handles them in order (the provider holds a key's later
// events while one is in flight).
func TestReorderWithinKeyWhenAsked(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 7, Reorder: 1, ReorderWithinKey: true})
	unordered := newCounter()
	w.subscribe("audit", unordered.handler(nil), crossbus.WithConcurrency(1), crossbus.WithPrefetch(32))
	evs := w.events(200, 2)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	unordered.waitDistinct(t, 200)
	within := 0
	for _, seq := range unordered.order {
		for i := 1; i < len(seq); i++ {
			if seq[i] < seq[i-1] {
				within++
			}
		}
	}
	assert.Positive(t, within)
}

// Delays: held-back deliveries arrive later; nothing is lost.
func TestDelayedDeliveriesArriveLater(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 8, Delay: 0.5, MaxDelay: 100 * time.Millisecond})
	c := newCounter()
	w.subscribe("billing", c.handler(nil))
	evs := w.events(100, 0)
	start := time.Now()
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 100)
	w.drained("billing")
	assert.Positive(t, w.chaos.Faults().Delays)
	assert.Greater(t, time.Since(start), 5*time.Millisecond)
	for _, e := range evs {
		assert.Equal(t, 1, c.runs[e.ID()])
	}
}

// Receive errors: the portable layer backs off and receives again.
func TestReceiveErrorsAreRetried(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 9, ReceiveError: 0.3})
	c := newCounter()
	w.subscribe("billing", c.handler(nil))
	evs := w.events(100, 0)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 100)
	assert.Positive(t, w.chaos.Faults().ReceiveErrors)
}

// Slow settlements delay acknowledgements without changing any outcome.
func TestSlowSettlementsChangeNoOutcome(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 10, SlowSettle: 0.5, SettleDelay: 10 * time.Millisecond})
	c := newCounter()
	w.subscribe("billing", c.handler(func(e *crossbus.Event) error {
		if d, _ := crossbus.DataAs[map[string]int](e); d["n"] == 0 {
			return crossbus.Permanent(errors.New("bad order"))
		}
		return nil
	}), crossbus.WithConcurrency(16))
	evs := w.events(100, 0)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 99)
	w.drained("billing")
	assert.Positive(t, w.chaos.Faults().SlowSettles)
	dls, err := w.mem.DeadLetters("orders", "billing")
	require.NoError(t, err)
	require.Len(t, dls, 1)
	assert.Equal(t, evs[0].ID(), dls[0].ID())
}

// A dropped connection loses the receiver's unsettled deliveries: their
// settlements fail and the broker redelivers them after the lease. With
// idempotency no effect is applied twice; nothing is lost.
func TestDroppedConnectionsRedeliverUnsettledEvents(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 11, Disconnect: 0.1})
	c := newCounter()
	w.subscribe("billing", c.handler(func(*crossbus.Event) error {
		time.Sleep(2 * time.Millisecond) // hold deliveries while the connection may drop
		return nil
	}), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}), crossbus.WithConcurrency(8))
	evs := w.events(300, 0)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 300)
	w.drained("billing")
	f := w.chaos.Faults()
	assert.Positive(t, f.Disconnects)
	assert.Positive(t, f.LostSettlements, "some settlements were lost with their connection")
	for _, e := range evs {
		assert.Equal(t, 1, c.runs[e.ID()], "event %s ran once", e.ID())
	}
}

// Handler failures under every fault at once: retried, then dead-lettered
// after the last attempt with its reason; every event either handled or
// dead-lettered, none lost.
func TestEveryFaultAtOnceLosesNothing(t *testing.T) {
	w := newWorld(t, chaos.Options{Seed: 12, LostAck: 0.05, Duplicate: 0.05, Reorder: 0.5, Delay: 0.05, MaxDelay: 20 * time.Millisecond,
		ReceiveError: 0.05, SlowSettle: 0.05, SettleDelay: 2 * time.Millisecond, Disconnect: 0.01})
	c := newCounter()
	w.subscribe("billing", c.handler(func(e *crossbus.Event) error {
		if d, _ := crossbus.DataAs[map[string]int](e); d["n"]%50 == 7 {
			return errors.New("ledger unavailable")
		}
		return nil
	}), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 2 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}),
		crossbus.WithConcurrency(8))
	evs := w.events(500, 0)
	require.NoError(t, w.bus.Publish(w.ctx, "orders", evs...))
	c.waitDistinct(t, 490)
	w.drained("billing")
	dls, err := w.mem.DeadLetters("orders", "billing")
	require.NoError(t, err)
	dead := map[string]bool{}
	for i := range dls {
		dead[dls[i].ID()] = true
		info, _ := crossbus.DeadLetterInfoOf(&dls[i])
		assert.Contains(t, info.Reason, "ledger unavailable")
	}
	for _, e := range evs {
		d, _ := crossbus.DataAs[map[string]int](e)
		if d["n"]%50 == 7 {
			assert.True(t, dead[e.ID()], "event %d dead-lettered", d["n"])
			continue
		}
		assert.Equal(t, 1, c.runs[e.ID()], "event %d handled once", d["n"])
	}
	t.Logf("faults: %v", w.chaos.Faults())
}

// chaos+<inner URL> opens the inner provider with the parameters that are
// not the chaos provider's.
func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "chaos+mem://?chaos.seed=7&chaos.duplicate=0.5&chaos.maxdelay=10ms&maxbacklog=10")
	require.NoError(t, err)
	defer bus.Close(ctx)
	var c *chaos.Provider
	require.True(t, bus.As(&c))
	assert.Equal(t, chaos.Options{Seed: 7, Duplicate: 0.5, MaxDelay: 10 * time.Millisecond, SettleDelay: 20 * time.Millisecond}, c.Options())
	var mem *memory.Provider
	require.True(t, bus.As(&mem), "As reaches the inner provider")
	assert.Same(t, mem, c.Inner())

	_, err = crossbus.Open(ctx, "chaos+mem://?chaos.lostack=2")
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = crossbus.Open(ctx, "chaos+mem://?chaos.nonsense=1")
	assert.ErrorIs(t, err, crossbus.ErrInvalidURL)
	_, err = crossbus.Open(ctx, "chaos+mem://?bogus=1")
	assert.ErrorContains(t, err, "unknown mem URL parameter")
	_, err = crossbus.Open(ctx, "chaos+nosuch://")
	assert.ErrorIs(t, err, crossbus.ErrUnknownScheme)
}
