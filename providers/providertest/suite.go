package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// Run runs every conformance test against the provider that mk's harnesses
// reach. Each guarantee is one subtest, named for what it proves.
func Run(t *testing.T, mk func(t *testing.T) Harness) {
	for _, tc := range guarantees() {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newEnv(t, mk))
		})
	}
}

// RunGuarantees runs the named conformance tests only (the subtest names of
// Run), for providers that keep some guarantees under conditions where
// others cannot hold — a fault-injecting wrapper proves that these survive
// its faults. An unknown name fails the test.
func RunGuarantees(t *testing.T, mk func(t *testing.T) Harness, names ...string) {
	byName := map[string]func(t *testing.T, e *env){}
	for _, tc := range guarantees() {
		byName[tc.name] = tc.fn
	}
	for _, name := range names {
		fn, ok := byName[name]
		if !ok {
			t.Errorf("providertest: no guarantee named %q", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			fn(t, newEnv(t, mk))
		})
	}
}

func guarantees() []struct {
	name string
	fn   func(t *testing.T, e *env)
} {
	return []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"AllAttributesExtensionsAndBinaryDataRoundTrip", testRoundTrip},
		{"BatchPublishReportsPerEventFailures", testBatchPerEventFailures},
		{"FanOutToTwoSubscriptions", testFanOut},
		{"OneSubscriptionNameOnTwoTopicsKeepsThemApart", testSubscriptionNamePerTopic},
		{"CompetingConsumersHandleEachEventOnce", testCompetingConsumers},
		{"NackRedeliversWithRisingAttempts", testNackRedelivery},
		{"DelayedRedeliveryNotEarlierThanAsked", testDelayedRedelivery},
		{"DeadLetterAfterMaxAttemptsWithReason", testDeadLetterAfterMaxAttempts},
		{"PermanentErrorDeadLettersAfterOneAttempt", testPermanent},
		{"PanicIsRecoveredAndDeadLettered", testPanic},
		{"OrderedPerKeyWithConcurrentWorkers", testOrdering},
		{"CloseDrainsInFlightAndRestIsRedelivered", testCloseDrains},
		{"UnknownTopicIsNotFound", testUnknownTopic},
		{"OversizedEventRefusedAndNothingSent", testOversized},
		{"CancelledContextPublishesNothing", testCancelledContext},
		{"IdempotentConsumerSkipsDuplicates", testIdempotency},
		{"NoEventLostUnderLoad", testNoLoss},
		{"TraceContextFlowsFromProducerToConsumers", testTraceContext},
		{"ShutdownIsBoundedWhenAHandlerIgnoresItsContext", testShutdownBounded},
		{"BusCloseIsBoundedAndStopsItsRouter", testRouterStopsWithItsBus},
		{"PublisherReuseAndHandlerChangesAreIsolated", testCopies},
		{"SlowHandlerDoesNotDelayOthers", testNoHeadOfLineBlocking},
		{"UnstartedEventsReachAnotherConsumer", testUnstartedReachAnotherConsumer},
		{"DeletedSubscriptionSurfacesAsError", testDeletedSubscriptionSurfaces},
		{"UndecodableMessageIsDeadLetteredByTheCore", testUndecodableDeadLettered},
		{"NamesAndExtensionValuesFollowThePortableRules", testPortableRules},
		{"NamesItsSystemAndReachesItsNativeClient", testNamesItselfAndReachesItsClient},
		{"DeadLettersListGroupRedrivePurge", testDeadLetterOps},
		{"EventsOutliveTheirDelivery", testEventsOutliveTheirDelivery},
		{"FilteredSubscriptionNeverReceivesANonMatchingEvent", testFilteredSubscription},
	}
}

func subscribe(t *testing.T, e *env, b *crossbus.Bus, topic, sub string, h crossbus.Handler, opts ...crossbus.RouteOption) *crossbus.Subscription {
	t.Helper()
	// Every route gets a dead-letter topic to fall back on, so providers
	// without a native dead-letter queue can run every test; a test's own
	// WithDeadLetterTopic comes later in the list and wins.
	opts = append([]crossbus.RouteOption{crossbus.WithDeadLetterTopic(e.fallbackDeadLetterTopic())}, opts...)
	s, err := b.Subscribe(e.ctx, topic, sub, h, opts...)
	require.NoError(t, err, "Subscribe")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func testRoundTrip(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(nil))

	full := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	full.SetSubject("orders/42")
	full.SetDataSchema("https://example.com/schemas/order.json")
	full.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&full, map[string]any{"id": 42, "items": []string{"a", "b"}}))
	full.SetExtension("tenant", "acme")
	full.SetExtension("priority", int32(7))
	full.SetExtension(crossbus.ExtPartitionKey, "customer-9")
	full.SetExtension(crossbus.ExtTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

	binary := crossbus.NewEvent("com.example.blob", "/blobs")
	raw := make([]byte, 256)
	for i := range raw {
		raw[i] = byte(i)
	}
	binary.SetDataContentType("application/octet-stream")
	require.NoError(t, crossbus.SetData(&binary, raw))

	noData := crossbus.NewEvent("com.example.ping", "/ping")

	require.NoError(t, b.Publish(e.ctx, topic, &full, &binary, &noData))
	c.waitFor(t, e.f.Timeout, "3 events", func() bool { return c.distinct() >= 3 })

	got := map[string]crossbus.Event{}
	c.mu.Lock()
	for _, ev := range c.events {
		got[ev.ID()] = ev
	}
	c.mu.Unlock()
	for _, want := range []crossbus.Event{full, binary, noData} {
		g, ok := got[want.ID()]
		require.True(t, ok, "event %s not received", want.ID())
		assert.Equal(t, "1.0", g.SpecVersion())
		assert.Equal(t, want.Type(), g.Type(), "type")
		assert.Equal(t, want.Source(), g.Source(), "source")
		assert.Equal(t, want.Subject(), g.Subject(), "subject")
		assert.Equal(t, want.DataSchema(), g.DataSchema(), "dataschema")
		assert.True(t, want.Time().Equal(g.Time()), "time: want %v got %v", want.Time(), g.Time())
		assert.Equal(t, want.DataContentType(), g.DataContentType(), "datacontenttype")
		assert.True(t, bytes.Equal(want.Data(), g.Data()), "data of %s: want %q got %q", want.Type(), want.Data(), g.Data())
		for name := range want.Extensions() {
			assert.Equal(t, crossbus.ExtensionString(&want, name), crossbus.ExtensionString(&g, name), "extension %s", name)
		}
		for name := range g.Extensions() {
			_, ok := want.Extensions()[name]
			assert.True(t, ok, "unexpected extension %q on received event", name)
		}
	}
}

func testBatchPerEventFailures(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(nil))

	good1, good2 := newEvent(1), newEvent(2)
	noSource := newEvent(3)
	noSource.SetSource("")
	badExt := newEvent(4)
	badExt.Context.AsV1().Extensions = map[string]any{"Bad-Name": "x"}
	badExt2 := badExt.Clone()
	v1 := badExt2.Context.AsV1()
	v1.Extensions = map[string]any{"Bad-Name": "x"}
	badExt2.Context = v1
	err := b.Publish(e.ctx, topic, good1, noSource, &badExt2, good2)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, []int{1, 2}, pe.FailedIndexes())
	assert.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "source")
	assert.Contains(t, err.Error(), "Bad-Name")

	c.waitFor(t, e.f.Timeout, "the 2 valid events", func() bool { return c.distinct() >= 2 })
	time.Sleep(200 * time.Millisecond) // nothing else may arrive
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Len(t, c.count, 2)
	assert.Contains(t, c.count, good1.ID())
	assert.Contains(t, c.count, good2.ID())
}

func testFanOut(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	s1 := e.subscription(topic, SubscriptionOptions{})
	s2 := e.subscription(topic, SubscriptionOptions{})
	c1, c2 := newCollector(), newCollector()
	subscribe(t, e, b, topic, s1, c1.handler(nil))
	// The second subscriber fails every event for good: the first must not notice.
	dl := e.deadLetters(b, topic, s2)
	subscribe(t, e, b, topic, s2, c2.handler(func(context.Context, *crossbus.Event) error {
		return crossbus.Permanent(errFlaky)
	}), dl.opts...)
	evs := events(20)
	require.NoError(t, b.Publish(e.ctx, topic, evs...))
	c1.waitFor(t, e.f.Timeout, "20 events on subscription 1", func() bool { return c1.distinct() == 20 })
	c2.waitFor(t, e.f.Timeout, "20 events on subscription 2", func() bool { return c2.distinct() == 20 })
	assert.Len(t, dl.read(b, 20), 20)
	c1.mu.Lock()
	defer c1.mu.Unlock()
	for id, n := range c1.count {
		assert.Equal(t, 1, n, "event %s handled %d times by the healthy subscriber", id, n)
	}
}

// testSubscriptionNamePerTopic subscribes one subscription name to two
// topics at once (a service's "audit" subscription on every topic it
// audits): a subscription is named within its topic, so each receives
// all of its own topic's events and none of the other's, and the second
// one starting does not disturb the first. Providers whose subscription
// names are global (Features.GlobalSubscriptionNames) are exempt.
func testSubscriptionNamePerTopic(t *testing.T, e *env) {
	if e.f.GlobalSubscriptionNames {
		t.Skip("subscription names are unique in the project or account on this provider, not within a topic (Features.GlobalSubscriptionNames)")
	}
	b := e.bus()
	topics := [2]string{e.topic(), e.topic()}
	sub := e.name("sub")
	var cs [2]*collector
	for i, topic := range topics {
		require.NoError(t, e.h.CreateSubscription(e.ctx, topic, sub, SubscriptionOptions{}), "CreateSubscription %q on topic %q", sub, topic)
		cs[i] = newCollector()
		subscribe(t, e, b, topic, sub, cs[i].handler(nil))
	}
	var want [2]map[string]bool
	for round := range 3 {
		for i, topic := range topics {
			if want[i] == nil {
				want[i] = map[string]bool{}
			}
			evs := events(5)
			for _, ev := range evs {
				ev.SetSubject(fmt.Sprintf("topic %d round %d", i, round))
				want[i][ev.ID()] = true
			}
			require.NoError(t, b.Publish(e.ctx, topic, evs...), "publish to topic %d", i)
		}
	}
	for i := range topics {
		cs[i].waitFor(t, e.f.Timeout, fmt.Sprintf("15 events of topic %d on its subscription", i), func() bool {
			cs[i].mu.Lock()
			defer cs[i].mu.Unlock()
			n := 0
			for id := range cs[i].count {
				if want[i][id] {
					n++
				}
			}
			return n == len(want[i])
		})
	}
	for i := range topics {
		cs[i].mu.Lock()
		for _, ev := range cs[i].events {
			assert.True(t, want[i][ev.ID()], "the subscription on topic %d received %q (%s), an event of the other topic", i, ev.ID(), ev.Subject())
		}
		cs[i].mu.Unlock()
	}
}

func testCompetingConsumers(t *testing.T, e *env) {
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	var byConsumer [2]atomic.Int64
	for i := range 2 {
		b := e.bus()
		subscribe(t, e, b, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
			byConsumer[i].Add(1)
			c.record(ctx, ev)
			time.Sleep(time.Millisecond)
			return nil
		}), crossbus.WithConcurrency(4))
	}
	const n = 200
	require.NoError(t, e.buses[0].Publish(e.ctx, topic, events(n)...))
	c.waitFor(t, e.f.Timeout, "all events", func() bool { return c.distinct() == n })
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, n, c.total(), "every event handled exactly once across consumers")
	assert.Positive(t, byConsumer[0].Load()+byConsumer[1].Load())
}

func testNackRedelivery(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 5})
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(func(ctx context.Context, ev *crossbus.Event) error {
		if info, _ := crossbus.DeliveryInfoFrom(ctx); info.Attempt < 3 {
			return errFlaky
		}
		return nil
	}), append(e.deadLetters(b, topic, sub).opts, crossbus.WithRetry(fastRetry(5)))...)
	ev := newEvent(0)
	require.NoError(t, b.Publish(e.ctx, topic, ev))
	c.waitFor(t, e.f.Timeout, "third attempt", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.count[ev.ID()] >= 3 })
	time.Sleep(200 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, []int{1, 2, 3}, c.attempts[ev.ID()], "attempt numbers")
}

func testDelayedRedelivery(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 3})
	c := newCollector()
	const delay = 500 * time.Millisecond
	policy := crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: delay, MaxBackoff: delay, Multiplier: 1, Jitter: crossbus.NoJitter}
	var failedAt atomic.Int64
	subscribe(t, e, b, topic, sub, c.handler(func(ctx context.Context, ev *crossbus.Event) error {
		if info, _ := crossbus.DeliveryInfoFrom(ctx); info.Attempt == 1 {
			failedAt.Store(time.Now().UnixNano())
			return errFlaky
		}
		return nil
	}), append(e.deadLetters(b, topic, sub).opts, crossbus.WithRetry(policy))...)
	ev := newEvent(0)
	require.NoError(t, b.Publish(e.ctx, topic, ev))
	c.waitFor(t, e.f.Timeout, "second attempt", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.count[ev.ID()] >= 2 })
	c.mu.Lock()
	defer c.mu.Unlock()
	gap := c.times[ev.ID()][1].Sub(time.Unix(0, failedAt.Load()))
	assert.GreaterOrEqual(t, gap, delay, "redelivered after %v, asked for %v", gap, delay)
}

func testDeadLetterAfterMaxAttempts(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 3})
	c := newCollector()
	dl := e.deadLetters(b, topic, sub)
	subscribe(t, e, b, topic, sub, c.handler(func(context.Context, *crossbus.Event) error {
		return fmt.Errorf("payment service down: %w", errFlaky)
	}), append(dl.opts, crossbus.WithRetry(fastRetry(3)))...)
	ev := newEvent(7)
	require.NoError(t, b.Publish(e.ctx, topic, ev))
	got := dl.read(b, 1)
	require.Len(t, got, 1)
	assert.Equal(t, ev.ID(), got[0].ID())
	assert.Equal(t, ev.Data(), got[0].Data())
	info, ok := crossbus.DeadLetterInfoOf(&got[0])
	require.True(t, ok, "dead letter carries the dead-letter extensions")
	assert.Contains(t, info.Reason, "payment service down")
	assert.Equal(t, 3, info.Attempts)
	assert.Equal(t, topic, info.Topic)
	assert.Equal(t, sub, info.Subscription)
	assert.False(t, info.Time.IsZero())
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, 3, c.count[ev.ID()], "handled exactly MaxAttempts times")
}

func testPermanent(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 5})
	c := newCollector()
	dl := e.deadLetters(b, topic, sub)
	type order struct {
		Amount int `json:"amount"`
	}
	subscribe(t, e, b, topic, sub, crossbus.Typed(func(ctx context.Context, ev *crossbus.Event, o order) error {
		c.record(ctx, ev)
		return crossbus.Permanent(errors.New("card declined"))
	}), append(dl.opts, crossbus.WithRetry(fastRetry(5)))...)
	ok := crossbus.NewEvent("com.example.order", "/t")
	require.NoError(t, crossbus.SetData(&ok, order{Amount: 5}))
	undecodable := crossbus.NewEvent("com.example.order", "/t")
	undecodable.SetDataContentType("application/json")
	undecodable.DataEncoded = []byte(`{"amount": "five"}`)
	require.NoError(t, b.Publish(e.ctx, topic, &ok, &undecodable))
	got := dl.read(b, 2)
	reasons := map[string]crossbus.DeadLetterInfo{}
	for i := range got {
		info, _ := crossbus.DeadLetterInfoOf(&got[i])
		reasons[got[i].ID()] = info
	}
	assert.Contains(t, reasons[ok.ID()].Reason, "card declined")
	assert.Equal(t, 1, reasons[ok.ID()].Attempts)
	assert.Contains(t, reasons[undecodable.ID()].Reason, "invalid")
	assert.Equal(t, 1, reasons[undecodable.ID()].Attempts)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, 1, c.count[ok.ID()], "a permanent failure is not retried")
	assert.Zero(t, c.count[undecodable.ID()], "undecodable data never reaches the typed handler")
}

func testPanic(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 2})
	dl := e.deadLetters(b, topic, sub)
	subscribe(t, e, b, topic, sub, crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		panic("nil map in handler")
	}), append(dl.opts, crossbus.WithRetry(fastRetry(2)))...)
	require.NoError(t, b.Publish(e.ctx, topic, newEvent(0)))
	got := dl.read(b, 1)
	info, ok := crossbus.DeadLetterInfoOf(&got[0])
	require.True(t, ok)
	assert.Contains(t, info.Reason, "nil map in handler")
	assert.Contains(t, info.Reason, "goroutine", "the reason carries the stack")
	assert.Equal(t, 2, info.Attempts)
}

func testOrdering(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{Ordered: true, MaxAttempts: 10})
	const keys, perKey = 10, 100
	var mu sync.Mutex
	seen := map[string][]int{}
	inFlight := map[string]bool{}
	var overlaps atomic.Int64
	failedOnce := map[string]bool{}
	done := make(chan struct{})
	var handled atomic.Int64
	subscribe(t, e, b, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		key := crossbus.PartitionKey(ev)
		var n int
		_, _ = fmt.Sscanf(crossbus.ExtensionString(ev, crossbus.ExtSequence), "%d", &n)
		mu.Lock()
		if inFlight[key] {
			overlaps.Add(1)
		}
		inFlight[key] = true
		// Fail some events once: their retry must not be overtaken.
		fail := n%17 == 5 && !failedOnce[ev.ID()]
		if fail {
			failedOnce[ev.ID()] = true
		}
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		mu.Lock()
		inFlight[key] = false
		if !fail {
			seen[key] = append(seen[key], n)
		}
		mu.Unlock()
		if fail {
			return errFlaky
		}
		if handled.Add(1) == keys*perKey {
			close(done)
		}
		return nil
	}), append(e.deadLetters(b, topic, sub).opts, crossbus.WithOrdering(), crossbus.WithConcurrency(8), crossbus.WithRetry(fastRetry(10)))...)

	var batch []*crossbus.Event
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			ev := newEvent(i)
			crossbus.SetPartitionKey(ev, fmt.Sprintf("key-%d", k))
			ev.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%010d", i))
			batch = append(batch, ev)
		}
	}
	for i := 0; i < len(batch); i += 100 {
		require.NoError(t, b.Publish(e.ctx, topic, batch[i:i+100]...))
	}
	select {
	case <-done:
	case <-time.After(2 * e.f.Timeout):
		t.Fatalf("handled %d of %d", handled.Load(), keys*perKey)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(t, overlaps.Load(), "two events of one key were in flight at once")
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("key-%d", k)
		got := seen[key]
		require.Len(t, got, perKey, key)
		for i, n := range got {
			if n != i {
				t.Fatalf("%s: position %d holds event %d (order %v...)", key, i, n, got[:min(len(got), i+3)])
			}
		}
	}
}

func testCloseDrains(t *testing.T, e *env) {
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	b1 := e.bus()
	started := make(chan struct{}, 100)
	release := make(chan struct{})
	var finished atomic.Int64
	s1, err := b1.Subscribe(e.ctx, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		started <- struct{}{}
		<-release
		time.Sleep(50 * time.Millisecond)
		finished.Add(1)
		return nil
	}), crossbus.WithDeadLetterTopic(e.fallbackDeadLetterTopic()), crossbus.WithConcurrency(2), crossbus.WithPrefetch(1), crossbus.WithAckDeadline(e.f.AckDeadline))
	require.NoError(t, err)
	const n = 20
	evs := events(n)
	require.NoError(t, b1.Publish(e.ctx, topic, evs...))
	<-started
	<-started
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- s1.Close(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	require.NoError(t, <-closed, "Close drains without error")
	require.Equal(t, int64(2), finished.Load(), "the two in-flight handlers finished during Close")

	c := newCollector()
	b2 := e.bus()
	subscribe(t, e, b2, topic, sub, c.handler(nil), crossbus.WithAckDeadline(e.f.AckDeadline))
	c.waitFor(t, e.f.Timeout+2*e.f.AckDeadline, "the rest redelivered to the next consumer", func() bool { return c.distinct() >= n-2 })
	time.Sleep(e.f.AckDeadline)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Len(t, c.count, n-2, "the events the first consumer acked are not redelivered")
}

func testUnknownTopic(t *testing.T, e *env) {
	if !e.f.UnknownTopicFails {
		t.Skip("provider creates topics on demand (Features.UnknownTopicFails is false)")
	}
	b := e.bus()
	err := b.Publish(e.ctx, "ct-never-created-"+strings.ToLower(e.name("x")), newEvent(0))
	require.Error(t, err)
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
}

func testOversized(t *testing.T, e *env) {
	b := e.bus()
	if e.f.MaxEventBytes <= 0 {
		t.Skip("provider declares no event size limit")
	}
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(nil))
	big := crossbus.NewEvent("com.example.big", "/t")
	require.NoError(t, crossbus.SetData(&big, bytes.Repeat([]byte("x"), e.f.MaxEventBytes+1)))
	err := b.Publish(e.ctx, topic, &big)
	require.Error(t, err)
	assert.ErrorIs(t, err, crossbus.ErrTooLarge)
	var se *crossbus.SizeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, e.f.MaxEventBytes, se.Limit)
	assert.Contains(t, err.Error(), fmt.Sprint(e.f.MaxEventBytes))
	// A marker published after it is the only thing that arrives.
	marker := newEvent(1)
	require.NoError(t, b.Publish(e.ctx, topic, marker))
	c.waitFor(t, e.f.Timeout, "marker", func() bool { return c.distinct() >= 1 })
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, map[string]int{marker.ID(): 1}, c.count)
}

func testCancelledContext(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	err := b.Publish(ctx, topic, newEvent(0))
	require.ErrorIs(t, err, context.Canceled)
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(nil))
	marker := newEvent(1)
	require.NoError(t, b.Publish(e.ctx, topic, marker))
	c.waitFor(t, e.f.Timeout, "marker", func() bool { return c.distinct() >= 1 })
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, map[string]int{marker.ID(): 1}, c.count, "the cancelled publish sent nothing")
}

func testIdempotency(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{})
	c := newCollector()
	store := crossbus.NewMemoryIdempotencyStore(0)
	subscribe(t, e, b, topic, sub, c.handler(nil), crossbus.WithIdempotency(store, crossbus.IdempotencyOptions{}), crossbus.WithConcurrency(4))
	evs := events(10)
	dups := append(append([]*crossbus.Event{}, evs...), evs...) // each event twice
	require.NoError(t, b.Publish(e.ctx, topic, dups...))
	marker := newEvent(99)
	require.NoError(t, b.Publish(e.ctx, topic, marker))
	c.waitFor(t, e.f.Timeout, "all events", func() bool { return c.distinct() == 11 })
	time.Sleep(300 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.count {
		assert.Equal(t, 1, n, "event %s handled %d times", id, n)
	}
}

func testNoLoss(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 10})
	n := e.f.LoadEvents
	var mu sync.Mutex
	handled := make(map[string]int, n)
	var distinct atomic.Int64
	done := make(chan struct{})
	subscribe(t, e, b, topic, sub, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		if rand.IntN(50) == 0 {
			return errFlaky // some failures, retried
		}
		mu.Lock()
		handled[ev.ID()]++
		first := handled[ev.ID()] == 1
		mu.Unlock()
		if first && distinct.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}), append(e.deadLetters(b, topic, sub).opts, crossbus.WithConcurrency(8), crossbus.WithPrefetch(32), crossbus.WithRetry(fastRetry(10)))...)
	evs := events(n)
	var wg sync.WaitGroup
	const publishers = 4
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p * 100; i < n; i += publishers * 100 {
				assert.NoError(t, b.Publish(e.ctx, topic, evs[i:min(i+100, n)]...))
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(4 * e.f.Timeout):
		t.Fatalf("handled %d of %d distinct events", distinct.Load(), n)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, handled, n)
	for _, ev := range evs {
		require.Positive(t, handled[ev.ID()], "event %s lost", ev.ID())
	}
}
