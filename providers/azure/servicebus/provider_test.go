package servicebus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

func TestOpenByURLAndConsumeAQueue(t *testing.T) {
	srv := newServer(t)
	require.NoError(t, srv.CreateQueue("jobs", sbtest.EntityOptions{}))
	t.Setenv(servicebus.EnvConnectionString, srv.ConnectionString())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := crossbus.Open(ctx, "azuresb://"+srv.Addr()+"?queue=jobs&lockduration=5s")
	require.NoError(t, err)
	defer bus.Close(ctx)
	assert.Equal(t, 5*time.Second, bus.Capabilities().DefaultAckDeadline)

	var mu sync.Mutex
	byRoute := map[string]int{}
	done := make(chan struct{})
	total := 0
	for _, route := range []string{"worker-a", "worker-b"} {
		_, err := bus.Subscribe(ctx, "jobs", route, crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			mu.Lock()
			defer mu.Unlock()
			byRoute[route]++
			if total++; total == 40 {
				close(done)
			}
			return nil
		}))
		require.NoError(t, err)
	}
	evs := make([]*crossbus.Event, 40)
	for i := range evs {
		e := crossbus.NewEvent("com.example.job", "/jobs")
		evs[i] = &e
	}
	require.NoError(t, bus.Publish(ctx, "jobs", evs...))
	<-done
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 40, byRoute["worker-a"]+byRoute["worker-b"], "consumers of a queue compete: each job once")
}

func TestURLErrorsNameTheProblem(t *testing.T) {
	t.Setenv(servicebus.EnvConnectionString, "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true")
	tests := []struct{ url, want string }{
		{"azuresb://127.0.0.1:5672?bogus=1", `unknown azuresb URL parameter "bogus"`},
		{"azuresb://127.0.0.1:5672/orders", "takes no path"},
		{"azuresb://other.servicebus.windows.net", `differs from the endpoint "127.0.0.1:5672"`},
		{"azuresb://127.0.0.1:5672?lockduration=soon", "lockduration"},
		{"azuresb://127.0.0.1:5672?credential=magic", "credential"},
		{"azuresb://127.0.0.1:5672?maxmessagebytes=100", "MaxMessageBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			_, err := crossbus.Open(context.Background(), tc.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("no connection string and no host", func(t *testing.T) {
		t.Setenv(servicebus.EnvConnectionString, "")
		_, err := crossbus.Open(context.Background(), "azuresb://?queue=q")
		require.ErrorIs(t, err, crossbus.ErrInvalidURL)
		assert.Contains(t, err.Error(), servicebus.EnvConnectionString)
	})
	t.Run("no client options", func(t *testing.T) {
		_, err := servicebus.New(context.Background(), servicebus.Options{})
		require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	})
}

func TestMissingSubscriptionIsNotFound(t *testing.T) {
	e := newEnv(t)
	_, err := e.bus.Subscribe(e.ctx, e.topic, "missing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }))
	require.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
	_, err = e.bus.Subscribe(e.ctx, e.topic, "missing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithOrdering())
	require.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
}

func TestOrderingNeedsASessionSubscription(t *testing.T) {
	e := newEnv(t)
	_, err := e.bus.Subscribe(e.ctx, e.topic, e.sub, crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithOrdering())
	require.ErrorIs(t, err, crossbus.ErrNotSupported)
	assert.Contains(t, err.Error(), "RequiresSession")
}

func TestReceiversReportWhatTheyDoNatively(t *testing.T) {
	e := newEnv(t, withSubscription(sbtest.EntityOptions{RequiresSession: true, LockDuration: lockDuration}))
	ordered, err := e.p.Subscribe(e.ctx, driver.SubscriptionSpec{Topic: e.topic, Name: e.sub, Ordered: true})
	require.NoError(t, err)
	defer ordered.Close(e.ctx)
	caps := ordered.(driver.ReceiverCapabilities).Capabilities()
	assert.True(t, caps.Ordering)
	assert.True(t, caps.NativeDeadLetter)

	// An unordered route on a session subscription is still served by sessions.
	plain, err := e.p.Subscribe(e.ctx, driver.SubscriptionSpec{Topic: e.topic, Name: e.sub})
	require.NoError(t, err)
	defer plain.Close(e.ctx)
	assert.True(t, plain.(driver.ReceiverCapabilities).Capabilities().Ordering)

	var sb *azservicebus.Client
	require.True(t, e.bus.As(&sb))
	assert.NotNil(t, sb)
}

func TestSessionWorkersMoveOnFromIdleSessions(t *testing.T) {
	e := newEnv(t, withSubscription(sbtest.EntityOptions{RequiresSession: true, LockDuration: lockDuration}),
		withProvider(servicebus.Options{LockDuration: lockDuration, MaxConcurrentSessions: 2, SessionIdleTimeout: 100 * time.Millisecond}))
	const keys, perKey = 6, 5
	var mu sync.Mutex
	seen := map[string][]string{}
	done := make(chan struct{})
	n := 0
	e.subscribe(crossbus.HandlerFunc(func(_ context.Context, ev *crossbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		k := crossbus.PartitionKey(ev)
		seen[k] = append(seen[k], crossbus.ExtensionString(ev, crossbus.ExtSequence))
		if n++; n == keys*perKey {
			close(done)
		}
		return nil
	}), crossbus.WithOrdering())
	var evs []*crossbus.Event
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			ev := crossbus.NewEvent("com.example.step", "/t")
			crossbus.SetPartitionKey(&ev, fmt.Sprintf("key-%d", k))
			ev.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%03d", i))
			evs = append(evs, &ev)
		}
	}
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, evs...))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d: two workers did not get round all %d sessions", n, keys*perKey, keys)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, got := range seen {
		assert.Equal(t, []string{"000", "001", "002", "003", "004"}, got, "order of %s", k)
	}
}

func TestScheduledPublishAppearsAtItsTime(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	e.subscribe(rec.handler(nil))
	later := crossbus.NewEvent("com.example.reminder", "/t")
	cancelled := crossbus.NewEvent("com.example.reminder", "/t")
	at := time.Now().Add(2 * time.Second)
	seqs, err := e.p.Schedule(e.ctx, e.topic, at, &later, &cancelled)
	require.NoError(t, err)
	require.Len(t, seqs, 2)
	require.NoError(t, e.p.CancelScheduled(e.ctx, e.topic, seqs[1]))
	rec.wait(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.events, 1, "the cancelled event never arrives")
	assert.Equal(t, later.ID(), rec.events[0].ID())
	assert.False(t, rec.times[0].Before(at), "delivered at %v, scheduled for %v", rec.times[0], at)

	bad := crossbus.NewEvent("", "/t")
	_, err = e.p.Schedule(e.ctx, e.topic, at, &bad)
	require.ErrorIs(t, err, crossbus.ErrInvalidEvent)
}

func TestPublishSplitsBatchesAtTheLinkLimitAndReportsOversizedEvents(t *testing.T) {
	// The broker's links take 32 KiB; the provider is told 64 KiB, so the
	// SDK's batch, not the size pre-check, finds the event that is too big.
	e := newEnv(t, withServer(sbtest.Options{MaxMessageSize: 32 * 1024}),
		withProvider(servicebus.Options{LockDuration: lockDuration, MaxMessageBytes: 64 * 1024}))
	rec := newRecorder()
	e.subscribe(rec.handler(nil), crossbus.WithConcurrency(1))
	var evs []*crossbus.Event
	for i := 0; i < 30; i++ {
		ev := crossbus.NewEvent("com.example.chunk", "/t")
		require.NoError(t, crossbus.SetData(&ev, bytes.Repeat([]byte{byte('a' + i%26)}, 3000)))
		evs = append(evs, &ev)
	}
	big := crossbus.NewEvent("com.example.chunk", "/t")
	require.NoError(t, crossbus.SetData(&big, make([]byte, 40*1024)))
	evs = append(evs[:10], append([]*crossbus.Event{&big}, evs[10:]...)...)

	err := e.bus.Publish(e.ctx, e.topic, evs...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{10}, pe.FailedIndexes())
	require.ErrorIs(t, err, crossbus.ErrTooLarge)
	var se *crossbus.SizeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 64*1024, se.Limit)
	assert.Greater(t, se.Size, 40*1024)

	rec.wait(t, 30, 20*time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, ev := range rec.events {
		want := evs[i]
		if i >= 10 {
			want = evs[i+1]
		}
		assert.Equal(t, want.ID(), ev.ID(), "event %d in publish order across batches", i)
	}
}

func TestServiceBusDeadLettersCarryTheDeadLetterExtensions(t *testing.T) {
	// MaxDeliveryCount 1: Service Bus itself dead-letters after one abandon.
	e := newEnv(t, withSubscription(sbtest.EntityOptions{LockDuration: lockDuration, MaxDeliveryCount: 1}))
	rec := newRecorder()
	e.subscribe(rec.handler(func(context.Context, *crossbus.Event) error { return errors.New("flaky") }),
		crossbus.WithRetry(fast(5, 10*time.Millisecond)))
	ev := crossbus.NewEvent("com.example.fragile", "/t")
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))
	got := e.deadLetters(1)
	assert.Equal(t, ev.ID(), got[0].ID())
	info, ok := crossbus.DeadLetterInfoOf(&got[0])
	require.True(t, ok)
	assert.Contains(t, info.Reason, "MaxDeliveryCountExceeded")
	assert.Equal(t, 1, info.Attempts)
	assert.Equal(t, e.topic, info.Topic)
	assert.Equal(t, e.sub, info.Subscription)
}

func TestDelayedNackHoldsTheLockAcrossRenewals(t *testing.T) {
	const lock, delay = 2 * time.Second, 4 * time.Second
	e := newEnv(t, withSubscription(sbtest.EntityOptions{LockDuration: lock}), withProvider(servicebus.Options{LockDuration: lock}))
	rec := newRecorder()
	e.subscribe(rec.handler(func(ctx context.Context, _ *crossbus.Event) error {
		if info, _ := crossbus.DeliveryInfoFrom(ctx); info.Attempt == 1 {
			return errors.New("not yet")
		}
		return nil
	}), crossbus.WithRetry(fast(3, delay)))
	ev := crossbus.NewEvent("com.example.later", "/t")
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))
	rec.wait(t, 2, 20*time.Second)
	time.Sleep(lock + lock/2)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Equal(t, []int{1, 2}, rec.attempts, "the held lock never expired: no extra delivery")
	assert.GreaterOrEqual(t, rec.times[1].Sub(rec.times[0]), delay)
}

func TestLeaseExtensionKeepsASlowHandlersMessage(t *testing.T) {
	const lock = time.Second
	e := newEnv(t, withSubscription(sbtest.EntityOptions{LockDuration: lock}), withProvider(servicebus.Options{LockDuration: lock}))
	rec := newRecorder()
	e.subscribe(rec.handler(func(context.Context, *crossbus.Event) error {
		time.Sleep(3 * lock)
		return nil
	}))
	ev := crossbus.NewEvent("com.example.slow", "/t")
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))
	rec.wait(t, 1, 10*time.Second)
	time.Sleep(3*lock + lock/2)
	assert.Equal(t, 1, rec.len(), "renewed locks: the message was not redelivered while the handler ran")
	require.Eventually(t, func() bool {
		c, err := e.srv.Counts(e.topic + "/Subscriptions/" + e.sub)
		return err == nil && c.Active == 0
	}, 5*time.Second, 20*time.Millisecond, "the late ack completed the message")
}

func TestDeadLetterOfADeadLetterIsNotSupported(t *testing.T) {
	e := newEnv(t)
	ev := crossbus.NewEvent("com.example.x", "/t")
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))
	r, err := e.p.Subscribe(e.ctx, driver.SubscriptionSpec{Topic: e.topic, Name: e.sub})
	require.NoError(t, err)
	defer r.Close(e.ctx)
	buf := make([]driver.Delivery, 1)
	_, err = r.Receive(e.ctx, buf)
	require.NoError(t, err)
	require.NoError(t, buf[0].DeadLetter(e.ctx, crossbus.DeadLetterInfo{Reason: "first line\nsecond line", Attempts: 2}))
	assert.Error(t, buf[0].Ack(e.ctx), "a settled delivery cannot be settled again")

	dr, err := e.p.SubscribeDeadLetters(e.ctx, e.topic, e.sub)
	require.NoError(t, err)
	defer dr.Close(e.ctx)
	_, err = dr.Receive(e.ctx, buf)
	require.NoError(t, err)
	err = buf[0].DeadLetter(e.ctx, crossbus.DeadLetterInfo{Reason: "again"})
	require.ErrorIs(t, err, crossbus.ErrNotSupported)
	info, ok := crossbus.DeadLetterInfoOf(buf[0].Event())
	require.True(t, ok)
	assert.Equal(t, "first line\nsecond line", info.Reason)
	assert.Equal(t, 2, info.Attempts)
	require.NoError(t, buf[0].Ack(e.ctx))

	raw, err := e.client.NewReceiverForSubscription(e.topic, e.sub, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	require.NoError(t, err)
	defer raw.Close(e.ctx)
	peeked, err := raw.PeekMessages(e.ctx, 1, nil)
	require.NoError(t, err)
	assert.Empty(t, peeked, "the dead letter was completed")
}
