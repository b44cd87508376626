package crossbus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

// batchRecorder is a batch handler that records what it was given and fails
// events by their type.
type batchRecorder struct {
	mu       sync.Mutex
	sizes    []int
	runs     map[string]int // event id -> times run
	attempts []int          // DeliveryInfo.Attempt of each call
	fail     func(e *crossbus.Event) error
}

func newBatchRecorder(fail func(e *crossbus.Event) error) *batchRecorder {
	return &batchRecorder{runs: map[string]int{}, fail: fail}
}

func (br *batchRecorder) HandleBatch(ctx context.Context, events []*crossbus.Event) []error {
	info, _ := crossbus.DeliveryInfoFrom(ctx)
	br.mu.Lock()
	defer br.mu.Unlock()
	br.sizes = append(br.sizes, len(events))
	br.attempts = append(br.attempts, info.Attempt)
	var errs []error
	for i, e := range events {
		br.runs[e.ID()]++
		if br.fail == nil {
			continue
		}
		if err := br.fail(e); err != nil {
			if errs == nil {
				errs = make([]error, len(events))
			}
			errs[i] = err
		}
	}
	return errs
}

func (br *batchRecorder) calls() int {
	br.mu.Lock()
	defer br.mu.Unlock()
	return len(br.sizes)
}

func (br *batchRecorder) batchSizes() []int {
	br.mu.Lock()
	defer br.mu.Unlock()
	return append([]int(nil), br.sizes...)
}

func (br *batchRecorder) ran(id string) int {
	br.mu.Lock()
	defer br.mu.Unlock()
	return br.runs[id]
}

func typedEvents(types ...string) []*crossbus.Event {
	out := make([]*crossbus.Event, len(types))
	for i, typ := range types {
		e := crossbus.NewEvent(typ, "/batch")
		out[i] = &e
	}
	return out
}

func TestBatchOptionsAreChecked(t *testing.T) {
	b, _ := memBus(t)
	r := newRouter(t, b)
	bh := newBatchRecorder(nil)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })
	for want, add := range map[string]func() error{
		"WithBatch needs a batch handler":    func() error { return r.Handle("topic", "sub-a", h, crossbus.WithBatch(10, time.Second)) },
		"WithOrdering cannot be combined":    func() error { return r.HandleBatch("topic", "sub-b", bh, crossbus.WithOrdering()) },
		"WithMiddleware wraps per-event":     func() error { return r.HandleBatch("topic", "sub-c", bh, crossbus.WithMiddleware(passThrough)) },
		"batch maxCount must be at least 1":  func() error { return r.HandleBatch("topic", "sub-d", bh, crossbus.WithBatch(0, time.Second)) },
		"batch maxWait must not be negative": func() error { return r.HandleBatch("topic", "sub-e", bh, crossbus.WithBatch(1, -time.Second)) },
		"nil batch handler":                  func() error { return r.HandleBatch("topic", "sub-f", nil) },
		"WithBatch needs a batch handler (sub)": func() error {
			_, err := b.Subscribe(context.Background(), "topic", "sub-h", h, crossbus.WithBatch(1, 0))
			return err
		},
	} {
		err := add()
		require.ErrorIs(t, err, crossbus.ErrInvalidOption, want)
		assert.ErrorContains(t, err, want[:min(len(want), 30)])
	}
	assert.ErrorIs(t, r.HandleBatch("", "sub-g", bh), crossbus.ErrInvalidName, "a route needs a topic")
	require.NoError(t, r.HandleBatch("topic", "sub-ok", bh, crossbus.WithBatch(10, time.Second)))
}

func TestBatchIsBoundedByCountAndByWaitSinceItsFirstEvent(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	br := newBatchRecorder(nil)
	r := newRouter(t, b)
	require.NoError(t, r.HandleBatch("topic", "sub", br, crossbus.WithBatch(5, 10*time.Second), crossbus.WithClock(clk), crossbus.WithConcurrency(1)))
	runRouter(t, r)

	require.NoError(t, b.Publish(ctx, "topic", mkEvents(12)...))
	waitUntil(t, "two full batches", func() bool { return br.calls() == 2 })
	require.NoError(t, clk.BlockUntil(ctx, 1), "the third batch waits for more events")
	assert.Equal(t, []int{5, 5}, br.batchSizes())

	clk.Advance(6 * time.Second)
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(1)...))
	waitUntil(t, "the late event joined the waiting batch", func() bool { st, _ := p.Stats("topic", "sub"); return st.InFlight == 3 })
	clk.Advance(4 * time.Second) // 10s after the batch's first event
	waitUntil(t, "the partial batch", func() bool { return br.calls() == 3 })
	assert.Equal(t, []int{5, 5, 3}, br.batchSizes())
	waitUntil(t, "all acked", settled(p, "topic", "sub"))
}

// The required scenario: one poisoned event in a batch is dead-lettered, and
// only that one; a transiently failing event is retried by the retry policy
// in a later batch; the others are acked after one run.
func TestBatchPoisonedEventIsDeadLetteredAlone(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	var flaky atomic.Int32
	br := newBatchRecorder(func(e *crossbus.Event) error {
		switch e.Type() {
		case "poison":
			return crossbus.Permanent(errors.New("cannot parse order"))
		case "flaky":
			if flaky.Add(1) == 1 {
				return errors.New("row locked")
			}
		}
		return nil
	})
	clk := clocktest.New(time.Time{})
	r := newRouter(t, b)
	require.NoError(t, r.HandleBatch("orders", "warehouse", br, crossbus.WithBatch(10, time.Minute), crossbus.WithClock(clk),
		quick(3), crossbus.WithConcurrency(1)))
	runRouter(t, r)
	evs := typedEvents("ok", "ok", "ok", "poison", "ok", "flaky", "ok", "ok", "ok", "ok")
	require.NoError(t, b.Publish(ctx, "orders", evs...))

	waitUntil(t, "the full batch ran", func() bool { return br.calls() == 1 })
	// The flaky event comes back after its (provider-side) retry delay and
	// starts a new batch, which waits for more events.
	require.NoError(t, clk.BlockUntil(ctx, 1))
	clk.Advance(time.Minute)
	waitUntil(t, "all settled", settled(p, "orders", "warehouse"))
	dead, err := p.DeadLetters("orders", "warehouse")
	require.NoError(t, err)
	require.Len(t, dead, 1, "only the poisoned event is dead-lettered")
	assert.Equal(t, evs[3].ID(), dead[0].ID())
	info, _ := crossbus.DeadLetterInfoOf(&dead[0])
	assert.Equal(t, 1, info.Attempts)
	assert.Contains(t, info.Reason, "cannot parse order")
	assert.Equal(t, []int{10, 1}, br.batchSizes(), "the flaky event was retried alone in a later batch")
	assert.Equal(t, []int{1, 2}, br.attempts)
	for i, e := range evs {
		want := 1
		if i == 5 {
			want = 2
		}
		assert.Equal(t, want, br.ran(e.ID()), "event %d", i)
	}
}

// A provider that cannot delay a redelivery: failed events of a batch are
// held (their leases extended) and retried in a batch after the backoff.
func TestBatchRetriesInPlaceWithoutDelayedRedelivery(t *testing.T) {
	ctx := testCtx(t)
	b0, p := memBus(t)
	_ = b0
	b, err := crossbus.New(noDelayedRedelivery{p})
	require.NoError(t, err)
	clk := clocktest.New(time.Time{})
	var first atomic.Bool
	br := newBatchRecorder(func(e *crossbus.Event) error {
		if e.Type() == "flaky" && !first.Swap(true) {
			return errors.New("timeout")
		}
		return nil
	})
	s, err := b.SubscribeBatch(ctx, "topic", "sub", br, crossbus.WithBatch(10, 0), crossbus.WithClock(clk), crossbus.WithConcurrency(1),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second, Multiplier: 1}))
	require.NoError(t, err)
	defer s.Close(context.Background())
	evs := typedEvents("ok", "flaky", "ok")
	require.NoError(t, b.Publish(ctx, "topic", evs...))

	waitUntil(t, "first batch", func() bool { return br.calls() == 1 })
	require.NoError(t, clk.BlockUntil(ctx, 1), "the held retry waits for its backoff")
	st, _ := p.Stats("topic", "sub")
	assert.Equal(t, memory.Stats{InFlight: 1}, st, "held by the consumer, not returned to the provider")
	clk.Advance(5 * time.Second)
	waitUntil(t, "retried", func() bool { return br.calls() == 2 })
	assert.Equal(t, []int{3, 1}, br.batchSizes())
	assert.Equal(t, []int{1, 2}, br.attempts, "the held retry counts as attempt 2")
	waitUntil(t, "all acked", settled(p, "topic", "sub"))
}

type noDelayedRedelivery struct{ *memory.Provider }

func (n noDelayedRedelivery) Capabilities() driver.Capabilities {
	c := n.Provider.Capabilities()
	c.DelayedRedelivery = false
	return c
}

func (n noDelayedRedelivery) Close(context.Context) error { return nil }

func TestBatchPanicsAndMalformedResultsFailEveryEvent(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	var calls atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.HandleBatch("topic", "sub", crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
		switch calls.Add(1) {
		case 1:
			panic("boom")
		case 2:
			return []error{nil} // wrong length
		}
		return nil
	}), crossbus.WithBatch(2, time.Minute), quick(3), crossbus.WithConcurrency(1)))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(2)...))
	waitUntil(t, "settled", settled(p, "topic", "sub"))
	assert.GreaterOrEqual(t, calls.Load(), int32(3), "both failures were retried")
	dead, _ := p.DeadLetters("topic", "sub")
	assert.Empty(t, dead)
}

// Idempotency claims are taken per event, so a duplicate in the same or a
// later batch does not run again.
func TestBatchIdempotencySkipsDuplicates(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	br := newBatchRecorder(nil)
	r := newRouter(t, b)
	require.NoError(t, r.HandleBatch("topic", "sub", br, crossbus.WithBatch(10, 0), quick(5), crossbus.WithConcurrency(1),
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{})))
	runRouter(t, r)
	evs := mkEvents(2)
	require.NoError(t, b.Publish(ctx, "topic", evs[0], evs[0], evs[1]))
	waitUntil(t, "settled", settled(p, "topic", "sub"))
	require.NoError(t, b.Publish(ctx, "topic", evs[1]))
	waitUntil(t, "settled again", settled(p, "topic", "sub"))
	assert.Equal(t, 1, br.ran(evs[0].ID()))
	assert.Equal(t, 1, br.ran(evs[1].ID()))
}

// Leases of events in a waiting batch are extended, so a long batch wait
// does not cause redeliveries.
func TestBatchExtendsLeasesWhileWaiting(t *testing.T) {
	ctx := testCtx(t)
	_, p := memBus(t)
	ext := &extendCounter{Provider: p, counts: map[string]*atomic.Int32{}}
	b, err := crossbus.New(ext)
	require.NoError(t, err)
	clk := clocktest.New(time.Time{})
	br := newBatchRecorder(nil)
	s, err := b.SubscribeBatch(ctx, "topic", "sub", br, crossbus.WithBatch(10, time.Hour), crossbus.WithClock(clk),
		crossbus.WithAckDeadline(300*time.Millisecond))
	require.NoError(t, err)
	defer s.Close(context.Background())
	evs := mkEvents(3)
	require.NoError(t, b.Publish(ctx, "topic", evs...))
	waitUntil(t, "every waiting event's lease extended twice", func() bool {
		for _, e := range evs {
			if ext.extended(e.ID()) < 2 {
				return false
			}
		}
		return true
	})
	assert.Zero(t, br.calls(), "the batch still waits")
	clk.Advance(time.Hour)
	waitUntil(t, "handled", settled(p, "topic", "sub"))
	assert.Equal(t, []int{3}, br.batchSizes())
	assert.Equal(t, []int{1}, br.attempts, "no redelivery while waiting")
}

// extendCounter counts lease extensions per event id.
type extendCounter struct {
	*memory.Provider
	mu     sync.Mutex
	counts map[string]*atomic.Int32
}

func (x *extendCounter) Close(context.Context) error { return nil }

func (x *extendCounter) extended(id string) int32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c := x.counts[id]; c != nil {
		return c.Load()
	}
	return 0
}

func (x *extendCounter) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	r, err := x.Provider.Subscribe(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &countingReceiver{Receiver: r, x: x}, nil
}

type countingReceiver struct {
	driver.Receiver
	x *extendCounter
}

func (r *countingReceiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	n, err := r.Receiver.Receive(ctx, buf)
	for i := 0; i < n; i++ {
		id := buf[i].Event().ID()
		r.x.mu.Lock()
		c := r.x.counts[id]
		if c == nil {
			c = &atomic.Int32{}
			r.x.counts[id] = c
		}
		r.x.mu.Unlock()
		buf[i] = &countingDelivery{Delivery: buf[i], n: c}
	}
	return n, err
}

type countingDelivery struct {
	driver.Delivery
	n *atomic.Int32
}

func (d *countingDelivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	d.n.Add(1)
	return d.Delivery.(driver.LeaseExtender).ExtendLease(ctx, lease)
}

func TestBatchRouteWithBreakerWaitsAndDrains(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	var healthy atomic.Bool
	var calls atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.HandleBatch("topic", "sub", crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
		calls.Add(1)
		if !healthy.Load() {
			return failEvery(len(events), errDown)
		}
		return nil
	}), crossbus.WithBatch(5, 0), crossbus.WithClock(clk), crossbus.WithConcurrency(1),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: crossbus.NoBackoff, Multiplier: 1}),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 5, OpenFor: time.Minute})))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(5)...))
	waitUntil(t, "open", func() bool { s, _ := r.BreakerState("topic", "sub"); return s == crossbus.BreakerOpen })
	require.NoError(t, clk.BlockUntil(ctx, 1))
	assert.Equal(t, int32(1), calls.Load(), "one failing batch of 5 opened it; no batch since")
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(5)...))
	healthy.Store(true)
	clk.Advance(time.Minute)
	waitUntil(t, "drained", settled(p, "topic", "sub"))
	dead, _ := p.DeadLetters("topic", "sub")
	assert.Empty(t, dead)
	st, _ := r.BreakerState("topic", "sub")
	assert.Equal(t, crossbus.BreakerClosed, st)
}

// A push adapter (Lambda SQS with partial batch responses) hands a batch to
// DeliverBatch and reads each delivery's outcome.
func TestDeliverBatchSettlesEachPushedDelivery(t *testing.T) {
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(context.Background(), "push-dlq", "inspect", false))
	br := newBatchRecorder(func(e *crossbus.Event) error {
		switch e.Type() {
		case "poison":
			return crossbus.Permanent(errors.New("bad"))
		case "flaky":
			return errors.New("try again")
		}
		return nil
	})
	ep, err := b.NewBatchEndpoint("push", "lambda", br, crossbus.WithDeadLetterTopic("push-dlq"), quick(3),
		crossbus.WithFilter(crossbus.TypePrefix("ok", "poison", "flaky")))
	require.NoError(t, err)
	var ds []driver.Delivery
	var pds []*driver.PushDelivery
	for _, typ := range []string{"ok", "poison", "flaky", "skipped", "ok"} {
		e := crossbus.NewEvent(typ, "/sqs")
		d := driver.NewPushDelivery(&e, 1)
		ds = append(ds, d)
		pds = append(pds, d)
	}
	ep.DeliverBatch(context.Background(), ds)
	var outcomes []driver.Outcome
	for _, d := range pds {
		o, _ := d.Outcome()
		outcomes = append(outcomes, o)
	}
	assert.Equal(t, []driver.Outcome{driver.OutcomeAcked, driver.OutcomeAcked, driver.OutcomeNacked, driver.OutcomeAcked, driver.OutcomeAcked}, outcomes,
		"the poisoned event went to the dead-letter topic; only the flaky one is reported as failed")
	assert.Equal(t, []int{4}, br.batchSizes(), "one handler call; the filtered event was acked without running")
	st, _ := p.Stats("push-dlq", "inspect")
	assert.Equal(t, 1, st.Waiting)
}

// On an ordered per-event endpoint, a nacked event keeps the later events
// of its key from running in the same pushed batch.
func TestDeliverBatchOrderedEndpointKeepsKeyOrder(t *testing.T) {
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(context.Background(), "push-dlq", "inspect", false))
	var mu sync.Mutex
	var ran []string
	ep, err := b.NewEndpoint("push", "fifo", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		ran = append(ran, e.Subject())
		mu.Unlock()
		if e.Subject() == "a1" {
			return errors.New("fail")
		}
		return nil
	}), crossbus.WithDeadLetterTopic("push-dlq"), crossbus.WithOrdering(), quick(3))
	require.NoError(t, err)
	var pds []*driver.PushDelivery
	var ds []driver.Delivery
	for _, s := range []string{"a1", "b1", "a2", "b2"} {
		e := crossbus.NewEvent("t", "/fifo")
		e.SetSubject(s)
		crossbus.SetPartitionKey(&e, s[:1])
		d := driver.NewPushDelivery(&e, 1)
		pds = append(pds, d)
		ds = append(ds, d)
	}
	ep.DeliverBatch(context.Background(), ds)
	var outcomes []driver.Outcome
	for _, d := range pds {
		o, _ := d.Outcome()
		outcomes = append(outcomes, o)
	}
	assert.Equal(t, []driver.Outcome{driver.OutcomeNacked, driver.OutcomeAcked, driver.OutcomeNacked, driver.OutcomeAcked}, outcomes)
	assert.Equal(t, []string{"a1", "b1", "b2"}, ran, "a2 did not overtake a1")
}

// Router.Endpoint serves a batch route from a push adapter; Deliver on it is
// a batch of one.
func TestRouterEndpointOfABatchRoute(t *testing.T) {
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(context.Background(), "push-dlq", "inspect", false))
	br := newBatchRecorder(nil)
	r := newRouter(t, b)
	r.Use(func(next crossbus.Handler) crossbus.Handler {
		panic("router middleware must not wrap a batch route")
	})
	require.NoError(t, r.HandleBatch("orders", "lambda", br, crossbus.WithDeadLetterTopic("push-dlq")))
	ep, err := r.Endpoint("orders", "lambda")
	require.NoError(t, err)
	e := crossbus.NewEvent("ok", "/sqs")
	d := driver.NewPushDelivery(&e, 1)
	ep.Deliver(context.Background(), d)
	o, _ := d.Outcome()
	assert.Equal(t, driver.OutcomeAcked, o)
	assert.Equal(t, []int{1}, br.batchSizes())
}
