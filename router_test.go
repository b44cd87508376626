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
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

func TestRouteOptionsAreCheckedWhenAdded(t *testing.T) {
	b, _ := memBus(t)
	r := newRouter(t, b)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })
	for name, opt := range map[string]crossbus.RouteOption{
		"concurrency must be at least 1": crossbus.WithConcurrency(0),
		"prefetch must be at least 1":    crossbus.WithPrefetch(-1),
		"MaxAttempts must be at least 1": crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: -1}),
		"ack deadline must be positive":  crossbus.WithAckDeadline(0),
		"nil filter":                     crossbus.WithFilter(nil),
		"nil idempotency store":          crossbus.WithIdempotency(nil, crossbus.IdempotencyOptions{}),
		"drain timeout must be positive": crossbus.WithDrainTimeout(-time.Second),
		"idempotency lease and TTL":      crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{TTL: -1}),
	} {
		err := r.Handle("topic", "sub", h, opt)
		require.ErrorIs(t, err, crossbus.ErrInvalidOption, name)
		assert.Contains(t, err.Error(), name)
	}
	require.NoError(t, r.Handle("topic", "sub", h))
	assert.ErrorContains(t, r.Handle("topic", "sub", h), "already exists")
	assert.ErrorIs(t, r.Handle("", "sub", h), crossbus.ErrInvalidName)
	assert.ErrorIs(t, r.Handle("topic", "sub3", h, crossbus.WithDeadLetterTopic("")), crossbus.ErrInvalidName)
	assert.ErrorIs(t, r.Handle("topic", "sub2", nil), crossbus.ErrInvalidOption)
	assert.ErrorIs(t, newRouter(t, b).Run(context.Background()), crossbus.ErrInvalidOption, "no routes")
}

func TestFilterSkipsAndAcksNonMatchingEvents(t *testing.T) {
	b, p := memBus(t)
	var got sync.Map
	r := newRouter(t, b)
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		got.Store(e.Type(), true)
		return nil
	}), crossbus.WithFilter(crossbus.Any(crossbus.TypeIs("order.placed"), crossbus.SourcePrefix("/vip/")))))
	runRouter(t, r)
	mk := func(typ, src string) *crossbus.Event { e := crossbus.NewEvent(typ, src); return &e }
	require.NoError(t, b.Publish(context.Background(), "orders",
		mk("order.placed", "/shop"), mk("order.viewed", "/shop"), mk("order.cancelled", "/vip/42")))
	waitUntil(t, "all settled", func() bool {
		st, _ := p.Stats("orders", "billing")
		return st == memory.Stats{}
	})
	_, placed := got.Load("order.placed")
	_, viewed := got.Load("order.viewed")
	_, vip := got.Load("order.cancelled")
	assert.True(t, placed)
	assert.False(t, viewed)
	assert.True(t, vip)
}

// A timeout on attempt 1 must not poison attempt 2's context (the retry gets
// a fresh deadline), whatever order the options were given in.
func TestTimeoutDoesNotBreakRetry(t *testing.T) {
	b, _ := memBus(t)
	var attempts atomic.Int32
	var ok atomic.Bool
	r := newRouter(t, b, crossbus.WithTimeout(50*time.Millisecond))
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if attempts.Add(1) == 1 {
			<-ctx.Done() // too slow the first time
			return ctx.Err()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ok.Store(true)
		return nil
	}), quick(3)))
	runRouter(t, r)
	require.NoError(t, b.Publish(context.Background(), "topic", mkEvents(1)...))
	waitUntil(t, "second attempt succeeds", ok.Load)
	assert.Equal(t, int32(2), attempts.Load())
}

// Idempotency sits inside retry: a failed first attempt releases the key so
// the retry runs, and a later duplicate is skipped.
func TestIdempotencyReleasesOnFailureAndSkipsDuplicates(t *testing.T) {
	b, p := memBus(t)
	store := crossbus.NewMemoryIdempotencyStore(0)
	var runs atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if runs.Add(1) == 1 {
			return errors.New("transient")
		}
		return nil
	}), quick(3), crossbus.WithIdempotency(store, crossbus.IdempotencyOptions{})))
	runRouter(t, r)
	ev := mkEvents(1)[0]
	require.NoError(t, b.Publish(context.Background(), "topic", ev))
	waitUntil(t, "retry succeeded", func() bool { return runs.Load() == 2 })
	require.NoError(t, b.Publish(context.Background(), "topic", ev))
	waitUntil(t, "duplicate settled", func() bool { st, _ := p.Stats("topic", "sub"); return st == memory.Stats{} })
	assert.Equal(t, int32(2), runs.Load(), "the duplicate did not run the handler")
	assert.Equal(t, 1, store.Len())
}

// Concurrent duplicates never run the handler at the same time.
func TestConcurrentDuplicatesNeverOverlap(t *testing.T) {
	b, p := memBus(t)
	store := crossbus.NewMemoryIdempotencyStore(0)
	var inside, overlaps, runs atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(30 * time.Millisecond)
		inside.Add(-1)
		runs.Add(1)
		return nil
	}), quick(5), crossbus.WithConcurrency(4), crossbus.WithPrefetch(1), crossbus.WithIdempotency(store, crossbus.IdempotencyOptions{})))
	runRouter(t, r)
	ev := mkEvents(1)[0]
	require.NoError(t, b.Publish(context.Background(), "topic", ev, ev, ev, ev))
	waitUntil(t, "all settled", func() bool { st, _ := p.Stats("topic", "sub"); return st == memory.Stats{} })
	assert.Zero(t, overlaps.Load())
	assert.Equal(t, int32(1), runs.Load())
}

func TestTypedHandlerDecodeFailureIsDeadLettered(t *testing.T) {
	b, p := memBus(t)
	var calls atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.Typed(func(ctx context.Context, e *crossbus.Event, o order) error {
		calls.Add(1)
		return nil
	}), quick(5)))
	runRouter(t, r)
	bad := crossbus.NewEvent("com.example.order", "/shop")
	bad.SetData("application/json", []byte(`[1,2,3]`))
	good := crossbus.NewEvent("com.example.order", "/shop")
	require.NoError(t, crossbus.SetData(&good, order{ID: "x"}))
	require.NoError(t, b.Publish(context.Background(), "topic", &bad, &good))
	waitUntil(t, "dead letter", func() bool { d, _ := p.DeadLetters("topic", "sub"); return len(d) == 1 })
	dl, _ := p.DeadLetters("topic", "sub")
	info, _ := crossbus.DeadLetterInfoOf(&dl[0])
	assert.Equal(t, bad.ID(), dl[0].ID())
	assert.Equal(t, 1, info.Attempts)
	assert.Contains(t, info.Reason, "invalid")
	waitUntil(t, "good handled", func() bool { return calls.Load() == 1 })
}

func TestPortableDeadLetterTopicWhenProviderHasNone(t *testing.T) {
	b, p := memBus(t)
	// A provider without a native dead-letter queue: wrap the memory one.
	nb, err := crossbus.New(noNativeDLQ{p})
	require.NoError(t, err)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return errors.New("always") })
	_, err = nb.Subscribe(context.Background(), "topic", "sub", h, quick(2))
	require.ErrorIs(t, err, crossbus.ErrInvalidOption, "without a dead-letter destination the subscription is refused")
	require.NoError(t, p.CreateSubscription(context.Background(), "topic-dlq", "inspect", false))
	s, err := nb.Subscribe(context.Background(), "topic", "sub", h, quick(2), crossbus.WithDeadLetterTopic("topic-dlq"))
	require.NoError(t, err)
	defer s.Close(context.Background())
	require.NoError(t, b.Publish(context.Background(), "topic", mkEvents(1)...))
	waitUntil(t, "dead letter on the topic", func() bool { st, _ := p.Stats("topic-dlq", "inspect"); return st.Waiting == 1 })
	waitUntil(t, "original acked", func() bool { st, _ := p.Stats("topic", "sub"); return st == memory.Stats{} })
}

type noNativeDLQ struct{ *memory.Provider }

func (n noNativeDLQ) Capabilities() driver.Capabilities {
	c := n.Provider.Capabilities()
	c.NativeDeadLetter = false
	return c
}

func TestRunDrainsInFlightOnCancel(t *testing.T) {
	b, p := memBus(t)
	started := make(chan struct{})
	var finished atomic.Bool
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		close(started)
		time.Sleep(100 * time.Millisecond)
		finished.Store(true)
		return nil
	}), crossbus.WithConcurrency(1), crossbus.WithPrefetch(1)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	<-r.Ready()
	require.NoError(t, b.Publish(context.Background(), "topic", mkEvents(3)...))
	<-started
	cancel()
	require.NoError(t, <-done)
	assert.True(t, finished.Load(), "Run returned only after the in-flight handler finished")
	st, _ := p.Stats("topic", "sub")
	assert.Equal(t, 2, st.Waiting+st.InFlight, "the unhandled events stay for redelivery")
}

func TestEndpointMapsOutcomes(t *testing.T) {
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(context.Background(), "push-dlq", "inspect", false))
	fail := errors.New("downstream 500")
	ep, err := b.NewEndpoint("push", "web", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		switch e.Type() {
		case "ok":
			return nil
		case "permanent":
			return crossbus.Permanent(fail)
		}
		return fail
	}), quick(3), crossbus.WithDeadLetterTopic("push-dlq"))
	require.NoError(t, err)
	deliver := func(typ string, attempt int) (driver.Outcome, time.Duration) {
		e := crossbus.NewEvent(typ, "/push")
		d := driver.NewPushDelivery(&e, attempt)
		ep.Deliver(context.Background(), d)
		return d.Outcome()
	}
	o, _ := deliver("ok", 1)
	assert.Equal(t, driver.OutcomeAcked, o)
	o, delay := deliver("flaky", 1)
	assert.Equal(t, driver.OutcomeNacked, o)
	assert.Positive(t, delay, "the retry delay is reported for Retry-After")
	o, _ = deliver("flaky", 3)
	assert.Equal(t, driver.OutcomeAcked, o, "exhausted: dead-lettered through the topic, then acked")
	o, _ = deliver("permanent", 1)
	assert.Equal(t, driver.OutcomeAcked, o)
	st, _ := p.Stats("push-dlq", "inspect")
	assert.Equal(t, 2, st.Waiting)

	_, err = b.NewEndpoint("push", "web", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }))
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}
