package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// The guarantees at the edges of the delivery contract: shutdown, copies,
// head-of-line blocking, receive failures, poison messages, names.

// SubscriptionDeleter is implemented by harnesses that can delete a
// subscription (or the entity that backs it) while a consumer runs, for the
// guarantee that a deleted subscription surfaces as an error.
type SubscriptionDeleter interface {
	DeleteSubscription(ctx context.Context, topic, subscription string) error
}

// RawPublisher is implemented by harnesses that can put a message that is not
// a CloudEvent on a topic (bytes with no CloudEvents attributes), for the
// guarantee that the portable layer dead-letters undecodable messages.
type RawPublisher interface {
	PublishRaw(ctx context.Context, topic string, payload []byte) error
}

// testShutdownBounded: a handler that ignores its context does not hold
// Close past the drain deadline; its event is left unsettled (so it is
// redelivered) and its late result is ignored.
func testShutdownBounded(t *testing.T, e *env) {
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	b1 := e.bus()
	release := make(chan struct{})
	started := make(chan string, 10)
	var late atomic.Int32
	s1, err := b1.Subscribe(e.ctx, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		started <- ev.ID()
		<-release // ignores ctx, like a hung call
		late.Add(1)
		return nil // a late success must not ack
	}), crossbus.WithDeadLetterTopic(e.fallbackDeadLetterTopic()), crossbus.WithConcurrency(1), crossbus.WithPrefetch(1),
		crossbus.WithAckDeadline(e.f.AckDeadline), crossbus.WithDrainTimeout(500*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	ev := newEvent(1)
	require.NoError(t, b1.Publish(e.ctx, topic, ev))
	select {
	case id := <-started:
		require.Equal(t, ev.ID(), id)
	case <-time.After(e.f.Timeout):
		t.Fatal("the handler never started")
	}

	closed := make(chan error, 1)
	go func() { closed <- s1.Close(context.Background()) }()
	var cerr error
	select {
	case cerr = <-closed:
	case <-time.After(e.f.Timeout):
		t.Fatalf("Close still blocked after %v with a drain timeout of 500ms", e.f.Timeout)
	}
	require.ErrorIs(t, cerr, crossbus.ErrHandlersAbandoned)
	var ae *crossbus.AbandonedError
	require.ErrorAs(t, cerr, &ae)
	assert.Equal(t, 1, ae.Handlers)
	assert.Equal(t, sub, ae.Subscription)
	assert.Contains(t, cerr.Error(), sub)
	select {
	case <-s1.Done():
	case <-time.After(e.f.Timeout):
		t.Fatal("Done not closed after Close returned")
	}
	close(release) // the abandoned handler finishes now: its result is ignored
	require.Eventually(t, func() bool { return late.Load() == 1 }, e.f.Timeout, 10*time.Millisecond)

	c := newCollector()
	b2 := e.bus()
	subscribe(t, e, b2, topic, sub, c.handler(nil), crossbus.WithAckDeadline(e.f.AckDeadline))
	c.waitFor(t, e.f.Timeout+2*e.f.AckDeadline, "the abandoned event redelivered to the next consumer",
		func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.count[ev.ID()] >= 1 })
}

// testRouterStopsWithItsBus: Bus.Close returns by its context's deadline
// with a hung handler, and a Router running on the bus returns; a Router
// whose Run fails is observable through Ready and Err.
func testRouterStopsWithItsBus(t *testing.T, e *env) {
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	b := e.bus()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	started := make(chan struct{}, 1)
	r, err := crossbus.NewRouter(b)
	require.NoError(t, err)
	require.NoError(t, r.Handle(topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		started <- struct{}{}
		<-release
		return nil
	}), crossbus.WithDeadLetterTopic(e.fallbackDeadLetterTopic()), crossbus.WithAckDeadline(e.f.AckDeadline)))
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	<-r.Ready()
	require.NoError(t, r.Err())
	require.NoError(t, b.Publish(e.ctx, topic, newEvent(1)))
	select {
	case <-started:
	case <-time.After(e.f.Timeout):
		t.Fatal("the handler never started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	cerr := b.Close(ctx)
	require.Error(t, cerr, "the deadline passed with a handler running")
	assert.ErrorIs(t, cerr, crossbus.ErrHandlersAbandoned)
	select {
	case err := <-ran:
		assert.ErrorIs(t, err, crossbus.ErrClosed, "Run says its bus closed")
		assert.ErrorIs(t, r.Err(), crossbus.ErrClosed)
	case <-time.After(e.f.Timeout):
		t.Fatal("Run still running after its bus closed")
	}

	// A Run that cannot start closes Ready and reports why.
	r2, err := crossbus.NewRouter(b)
	require.NoError(t, err)
	require.NoError(t, r2.Handle(topic, e.name("sub"), crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithDeadLetterTopic(e.fallbackDeadLetterTopic())))
	go func() { ran <- r2.Run(context.Background()) }()
	select {
	case <-r2.Ready():
	case <-time.After(e.f.Timeout):
		t.Fatal("Ready never closed for a Run that failed")
	}
	assert.ErrorIs(t, r2.Err(), crossbus.ErrClosed)
	assert.ErrorIs(t, <-ran, crossbus.ErrClosed)
}

// testCopies: after Publish returns the caller may reuse its event; each
// delivery is an independent copy, so a handler changing its event affects
// neither another subscription nor a redelivery.
func testCopies(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	subA := e.subscription(topic, SubscriptionOptions{MaxAttempts: 3})
	subB := e.subscription(topic, SubscriptionOptions{})
	type seen struct {
		id, data, tenant, subject string
	}
	var mu sync.Mutex
	got := map[string][]seen{}
	record := func(name string, ev *crossbus.Event) {
		mu.Lock()
		got[name] = append(got[name], seen{ev.ID(), string(ev.Data()), crossbus.ExtensionString(ev, "tenant"), ev.Subject()})
		mu.Unlock()
	}
	// Subscription A changes everything it can on the first attempt, then
	// fails. Where the provider redelivers (delayed redelivery) the second
	// attempt is a new delivery and must see the event as published; where
	// the retry runs in place it is the same delivery, so it is not checked.
	redelivers := b.Capabilities().DelayedRedelivery
	subscribe(t, e, b, topic, subA, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		record("a", ev)
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		if info.Attempt == 1 {
			ev.SetExtension("tenant", "mutated")
			ev.SetSubject("mutated")
			if len(ev.DataEncoded) > 0 {
				ev.DataEncoded[0] = 'X' // in place
			}
			return errFlaky
		}
		return nil
	}), crossbus.WithRetry(fastRetry(3)))
	subscribe(t, e, b, topic, subB, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		record("b", ev)
		return nil
	}))

	// One Event value, published three times with a new id and data each time.
	ev := crossbus.NewEvent("com.example.reused", "/providertest")
	ev.SetExtension("tenant", "acme")
	ev.SetSubject("orders/1")
	buf := []byte(`{"n":0}`)
	var ids []string
	for i := range 3 {
		ev.SetID(fmt.Sprintf("reused-%s-%d", e.name("ev"), i))
		buf[5] = byte('0' + i) // the same buffer, rewritten
		ev.SetDataContentType("application/json")
		ev.DataEncoded = buf
		require.NoError(t, b.Publish(e.ctx, topic, &ev))
		ids = append(ids, ev.ID())
	}
	ev.SetExtension("tenant", "changed-after-publish")
	buf[1] = 'Z'

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["b"]) >= 3 && len(got["a"]) >= 6
	}, e.f.Timeout, 10*time.Millisecond, "3 deliveries on b, 3 events twice on a")
	mu.Lock()
	defer mu.Unlock()
	want := map[string]seen{}
	for i, id := range ids {
		want[id] = seen{id, fmt.Sprintf(`{"n":%d}`, i), "acme", "orders/1"}
	}
	for _, name := range []string{"a", "b"} {
		for i, s := range got[name] {
			if name == "a" && !redelivers && i >= 3 {
				continue
			}
			w, ok := want[s.id]
			require.True(t, ok, "subscription %s got unknown event %q", name, s.id)
			assert.Equal(t, w, s, "subscription %s saw what was published", name)
		}
	}
	ids2 := map[string]bool{}
	for _, s := range got["b"] {
		ids2[s.id] = true
	}
	assert.Len(t, ids2, 3, "three distinct events, not the last version three times")
}

// testNoHeadOfLineBlocking: with WithConcurrency(n) one slow handler does not
// hold back events other workers could run, and n handlers do run at once.
func testNoHeadOfLineBlocking(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	const n = 8
	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	var fast, running, peak atomic.Int32
	var slowID atomic.Value // string
	slowID.Store("")
	var gate atomic.Pointer[chan struct{}]
	gate1 := make(chan struct{})
	gate.Store(&gate1)
	subscribe(t, e, b, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		<-*gate.Load()
		if ev.ID() == slowID.Load().(string) {
			<-release
			return nil
		}
		fast.Add(1)
		return nil
	}), crossbus.WithConcurrency(n), crossbus.WithPrefetch(n))

	// Part 1: one slow event among n; the n-1 fast ones finish while it runs.
	evs := events(n)
	slowID.Store(evs[0].ID())
	close(gate1)
	require.NoError(t, b.Publish(e.ctx, topic, evs...))
	require.Eventually(t, func() bool { return fast.Load() == n-1 }, e.f.Timeout, 10*time.Millisecond,
		"the %d fast events were handled while the slow one still ran (handled %d)", n-1, fast.Load())
	close(release)

	// Part 2: with 5n events queued and handlers that wait, n run at once.
	gate2 := make(chan struct{})
	gate.Store(&gate2)
	require.Eventually(t, func() bool { return running.Load() == 0 }, e.f.Timeout, 10*time.Millisecond)
	peak.Store(0)
	fast.Store(0)
	require.NoError(t, b.Publish(e.ctx, topic, events(5*n)...))
	require.Eventually(t, func() bool { return running.Load() == n }, e.f.Timeout, 10*time.Millisecond,
		"WithConcurrency(%d) reaches %d handlers at once (running %d)", n, n, running.Load())
	close(gate2)
	require.Eventually(t, func() bool { return fast.Load() == 5*n }, e.f.Timeout, 10*time.Millisecond)
	assert.LessOrEqual(t, peak.Load(), int32(n), "never more than the concurrency")
}

// testUnstartedReachAnotherConsumer: events a consumer received but could
// not start (every handler busy) are not kept leased behind its busy
// handlers: another consumer gets them.
func testUnstartedReachAnotherConsumer(t *testing.T, e *env) {
	if probe := e.bus(); probe.Capabilities().DefaultAckDeadline == 0 {
		t.Skip("the provider has no leases: a partition's events belong to its consumer until the consumer leaves")
	}
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	stuck := e.bus()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var stuckStarted atomic.Int32
	subscribe(t, e, stuck, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		stuckStarted.Add(1)
		<-release
		return nil
	}), crossbus.WithConcurrency(2), crossbus.WithPrefetch(16), crossbus.WithAckDeadline(e.f.AckDeadline),
		crossbus.WithDrainTimeout(100*time.Millisecond))
	const n = 20
	require.NoError(t, stuck.Publish(e.ctx, topic, events(n)...))
	require.Eventually(t, func() bool { return stuckStarted.Load() == 2 }, e.f.Timeout, 10*time.Millisecond)

	c := newCollector()
	healthy := e.bus()
	subscribe(t, e, healthy, topic, sub, c.handler(nil), crossbus.WithAckDeadline(e.f.AckDeadline))
	c.waitFor(t, e.f.Timeout+4*e.f.AckDeadline, "every event the stuck consumer did not start, on the healthy one",
		func() bool { return c.distinct() >= n-2 })
}

// testDeletedSubscriptionSurfaces: a subscription deleted under a running
// consumer stops it with an error that says so, instead of a silent retry
// loop.
func testDeletedSubscriptionSurfaces(t *testing.T, e *env) {
	del, ok := e.h.(SubscriptionDeleter)
	if !ok {
		t.Skip("the harness cannot delete a subscription (it does not implement providertest.SubscriptionDeleter)")
	}
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	s := subscribe(t, e, b, topic, sub, c.handler(nil))
	require.NoError(t, b.Publish(e.ctx, topic, newEvent(1)))
	c.waitFor(t, e.f.Timeout, "the first event", func() bool { return c.distinct() == 1 })
	require.NoError(t, del.DeleteSubscription(e.ctx, topic, sub))
	select {
	case <-s.Done():
	case <-time.After(e.f.Timeout + e.f.AckDeadline):
		t.Fatal("the subscription kept running after it was deleted")
	}
	err := s.Err()
	require.Error(t, err)
	assert.True(t, errors.Is(err, crossbus.ErrSubscriptionNotFound) || errors.Is(err, crossbus.ErrTopicNotFound),
		"the error says the entity is gone: %v", err)
	assert.Contains(t, err.Error(), sub)
}

// testUndecodableDeadLettered: a message that is not a CloudEvent never
// reaches the handler; the portable layer dead-letters it with the decode
// error as the reason.
func testUndecodableDeadLettered(t *testing.T, e *env) {
	raw, ok := e.h.(RawPublisher)
	if !ok {
		t.Skip("the harness cannot publish raw bytes (it does not implement providertest.RawPublisher); providers whose mapping turns every message into an event have nothing undecodable")
	}
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 3})
	dl := e.deadLetters(b, topic, sub)
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(nil), append(dl.opts, crossbus.WithRetry(fastRetry(3)))...)
	payload := []byte("\x00\x01 not a cloudevent {")
	require.NoError(t, raw.PublishRaw(e.ctx, topic, payload))
	marker := newEvent(1)
	require.NoError(t, b.Publish(e.ctx, topic, marker))
	got := dl.read(b, 1)
	require.Len(t, got, 1)
	assert.Equal(t, driver.TypeUndecodable, got[0].Type())
	assert.True(t, bytes.Equal(payload, got[0].Data()), "the raw payload is kept: %q", got[0].Data())
	info, ok := crossbus.DeadLetterInfoOf(&got[0])
	require.True(t, ok)
	assert.Contains(t, info.Reason, "undecodable")
	assert.Equal(t, topic, info.Topic)
	assert.Equal(t, sub, info.Subscription)
	assert.GreaterOrEqual(t, info.Attempts, 1)
	c.waitFor(t, e.f.Timeout, "the marker", func() bool { return c.distinct() >= 1 })
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, map[string]int{marker.ID(): 1}, c.count, "only the marker reached the handler")
}

// testPortableRules: names and extension values outside the portable rules
// are refused before the provider sees them, the same on every provider.
func testPortableRules(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(nil))
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })
	for _, bad := range []string{"", "ab", "a b", "orders.*", ">", "orders.placed", "orders_placed", "-orders", "orders-", "1orders", strings.Repeat("x", 51), "caf\u00e9"} {
		err := b.Publish(e.ctx, bad, newEvent(0))
		require.ErrorIs(t, err, crossbus.ErrInvalidName, "publish to %q", bad)
		_, err = b.Subscribe(e.ctx, topic, bad, h)
		require.ErrorIs(t, err, crossbus.ErrInvalidName, "subscribe %q", bad)
		_, err = b.Subscribe(e.ctx, bad, "valid-sub", h)
		require.ErrorIs(t, err, crossbus.ErrInvalidName, "subscribe to topic %q", bad)
	}
	err := b.Publish(e.ctx, "a b", newEvent(0))
	assert.ErrorContains(t, err, `' ' at position 1`)

	type custom struct{ A int }
	withRawExtension := func(ev *crossbus.Event, name string, v any) *crossbus.Event {
		v1 := ev.Context.AsV1()
		v1.Extensions = map[string]any{name: v} // bypasses SetExtension's conversion
		ev.Context = v1
		return ev
	}
	structExt := withRawExtension(newEvent(1), "custom", custom{A: 1})
	tooBig := withRawExtension(newEvent(2), "big", int64(1)<<40)
	ok := newEvent(3)
	ok.SetExtension("flag", true)
	ok.SetExtension("count", int32(7))
	ok.SetExtension("when", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	err = b.Publish(e.ctx, topic, structExt, tooBig, ok)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{0, 1}, pe.FailedIndexes())
	assert.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	assert.ErrorContains(t, err, `extension "custom"`)
	assert.ErrorContains(t, err, `extension "big"`)
	c.waitFor(t, e.f.Timeout, "the valid event", func() bool { return c.distinct() >= 1 })
	time.Sleep(100 * time.Millisecond) // nothing else may arrive
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, map[string]int{ok.ID(): 1}, c.count, "only the valid event was sent")
}

// NativeClient is implemented by harnesses to name a native client the
// provider's As must reach: AsTarget returns a new pointer to it (for
// example new(*pubsub.Client)).
type NativeClient interface {
	AsTarget() any
}

// testNamesItselfAndReachesItsClient: the provider names its messaging
// system for telemetry, reaches its native client through As, and refuses
// targets it does not know.
func testNamesItselfAndReachesItsClient(t *testing.T, e *env) {
	b := e.bus()
	ms, ok := b.Provider().(driver.MessagingSystem)
	require.True(t, ok, "the provider implements driver.MessagingSystem")
	assert.NotEmpty(t, ms.MessagingSystem())
	assert.NotEqual(t, "crossbus", ms.MessagingSystem())
	type unrelated struct{ _ int }
	var u *unrelated
	assert.False(t, b.As(&u), "As refuses a target it does not know")
	assert.False(t, b.As(nil), "As refuses nil")
	nc, ok := e.h.(NativeClient)
	if !ok {
		t.Skip("the harness names no native client (it does not implement providertest.NativeClient)")
	}
	target := nc.AsTarget()
	require.True(t, b.As(target), "As reaches %T", target)
	v := reflect.ValueOf(target).Elem()
	assert.False(t, v.IsZero(), "As set %T to the native client", target)
}

// testEventsOutliveTheirDelivery: a handler may keep its event after it
// returned (a recorder, a goroutine it hands the event to), and the engine
// reads an event after settling it (dead-letter logging). A provider must
// not reuse a delivered event, its context or its data once the delivery
// settles: every kept event still reads as published after many more
// deliveries, acked and dead-lettered alike (run with -race to also catch a
// reuse the values do not show).
func testEventsOutliveTheirDelivery(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 1})
	dl := e.deadLetters(b, topic, sub)
	var mu sync.Mutex
	var kept []*crossbus.Event
	ids := map[string]bool{}
	subscribe(t, e, b, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		mu.Lock()
		kept = append(kept, ev)
		ids[ev.ID()] = true
		mu.Unlock()
		if crossbus.ExtensionString(ev, "verdict") == "fail" {
			return crossbus.Permanent(errors.New("refused"))
		}
		return nil
	}), append(dl.opts, crossbus.WithConcurrency(4), crossbus.WithRetry(fastRetry(1)))...)

	const n = 60
	want := map[string]string{}
	for i := range n {
		ev := crossbus.NewEvent("com.example.kept", "/providertest")
		ev.SetID(fmt.Sprintf("kept-%s-%d", e.name("ev"), i))
		ev.SetSubject(fmt.Sprintf("s-%d", i))
		verdict := "ok"
		if i%10 == 9 {
			verdict = "fail"
		}
		ev.SetExtension("verdict", verdict)
		ev.SetDataContentType("application/json")
		ev.DataEncoded = []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i)))
		want[ev.ID()] = ev.Subject() + "|" + verdict + "|" + string(ev.DataEncoded)
		require.NoError(t, b.Publish(e.ctx, topic, &ev))
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ids) >= n
	}, e.f.Timeout, 10*time.Millisecond, "every event handled")
	dl.read(b, n/10)

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range kept {
		w, ok := want[ev.ID()]
		require.True(t, ok, "a kept event reads as an unknown id %q: its delivery was reused", ev.ID())
		got := ev.Subject() + "|" + crossbus.ExtensionString(ev, "verdict") + "|" + string(ev.Data())
		assert.Equal(t, w, got, "kept event %s still reads as published", ev.ID())
		seen[ev.ID()] = true
	}
	assert.Len(t, seen, n, "every event kept once at least")
}
