package fanout_test

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
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/patterns/fanout"
	"github.com/crossbus/crossbus/providers/memory"
)

// tally records which events each subscriber handled successfully.
type tally struct {
	mu   sync.Mutex
	seen map[string]map[string]int // subscriber -> event id -> successes
	done chan string
}

func newTally() *tally {
	return &tally{seen: map[string]map[string]int{}, done: make(chan string, 1000)}
}

func (t *tally) handler(name string, fail func(e *crossbus.Event, attempt int) error) crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		if fail != nil {
			if err := fail(e, info.Attempt); err != nil {
				return err
			}
		}
		t.mu.Lock()
		if t.seen[name] == nil {
			t.seen[name] = map[string]int{}
		}
		t.seen[name][e.ID()]++
		t.mu.Unlock()
		t.done <- name
		return nil
	})
}

func (t *tally) handled(name string) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.seen[name] {
		out[k] = v
	}
	return out
}

func signup(i int) *crossbus.Event {
	e := crossbus.NewEvent("user-signedup", "/accounts")
	e.SetID(fmt.Sprintf("user-%d", i))
	_ = crossbus.SetData(&e, map[string]string{"phone": fmt.Sprintf("+100%d", i)})
	return &e
}

func quick(attempts int) *crossbus.RetryPolicy {
	return fanout.Retry(crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Multiplier: 2})
}

func openBus(t *testing.T) (*crossbus.Bus, *memory.Provider) {
	t.Helper()
	bus, err := crossbus.Open(context.Background(), "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	var p *memory.Provider
	require.True(t, bus.As(&p))
	return bus, p
}

// TestFailingSubscriberNeitherBlocksNorRepeatsOthers: SMS fails twice for
// every event and always for user-3; the others run once per event, and
// user-3 ends in SMS's dead-letter queue only.
func TestFailingSubscriberNeitherBlocksNorRepeatsOthers(t *testing.T) {
	ctx := context.Background()
	bus, mem := openBus(t)
	tl := newTally()
	flakySMS := func(e *crossbus.Event, attempt int) error {
		if e.ID() == "user-3" {
			return errors.New("carrier rejects the number")
		}
		if attempt < 3 {
			return fmt.Errorf("sms gateway timeout (attempt %d)", attempt)
		}
		return nil
	}
	f, err := fanout.New("user-signedup",
		fanout.Subscriber{Name: "sms", Handler: tl.handler("sms", flakySMS), Retry: quick(4)},
		fanout.Subscriber{Name: "email", Handler: tl.handler("email", nil), Retry: quick(2), Concurrency: 2},
		fanout.Subscriber{Name: "marketing", Handler: tl.handler("marketing", nil)},
		fanout.Subscriber{Name: "analytics", Handler: tl.handler("analytics", nil), Concurrency: 1},
	)
	require.NoError(t, err)
	run, err := f.Start(ctx, bus)
	require.NoError(t, err)
	defer run.Close(ctx)

	const users = 6
	for i := 0; i < users; i++ {
		require.NoError(t, f.Publish(ctx, bus, signup(i)))
	}
	want := 3*users + (users - 1) // email, marketing, analytics all; sms all but user-3
	for i := 0; i < want; i++ {
		select {
		case <-tl.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d handlings", i, want)
		}
	}
	require.Eventually(t, func() bool {
		dl, _ := mem.DeadLetters("user-signedup", "sms")
		return len(dl) == 1
	}, 10*time.Second, 10*time.Millisecond)

	for _, name := range []string{"email", "marketing", "analytics"} {
		h := tl.handled(name)
		assert.Len(t, h, users, name)
		for id, n := range h {
			assert.Equal(t, 1, n, "%s handled %s once", name, id)
		}
		dl, err := mem.DeadLetters("user-signedup", name)
		require.NoError(t, err)
		assert.Empty(t, dl, "%s has no dead letters", name)
	}
	sms := tl.handled("sms")
	assert.Len(t, sms, users-1)
	assert.NotContains(t, sms, "user-3")
	dl, err := mem.DeadLetters("user-signedup", "sms")
	require.NoError(t, err)
	require.Len(t, dl, 1)
	assert.Equal(t, "user-3", dl[0].ID())
	info, ok := crossbus.DeadLetterInfoOf(&dl[0])
	require.True(t, ok)
	assert.Equal(t, 4, info.Attempts, "SMS's own retry policy: 4 attempts")
	assert.Equal(t, "sms", info.Subscription)
	assert.Contains(t, info.Reason, "carrier rejects the number")

	st := f.Stats()
	assert.Equal(t, fanout.Stats{Attempts: 3*(users-1) + 4, Succeeded: users - 1, Failed: 2*(users-1) + 4, GaveUp: 1}, st["sms"])
	assert.Equal(t, fanout.Stats{Attempts: users, Succeeded: users}, st["email"])
	assert.Equal(t, []string{"sms", "email", "marketing", "analytics"}, f.Names())
}

// TestHungSubscriberDoesNotDelayOthers: a subscriber stuck on every event
// holds only its own subscription.
func TestHungSubscriberDoesNotDelayOthers(t *testing.T) {
	ctx := context.Background()
	bus, _ := openBus(t)
	tl := newTally()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f, err := fanout.New("user-signedup",
		fanout.Subscriber{Name: "stuck", Concurrency: 1, Handler: crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})},
		fanout.Subscriber{Name: "email", Handler: tl.handler("email", nil)},
	)
	require.NoError(t, err)
	run, err := f.Start(ctx, bus)
	require.NoError(t, err)
	for i := 0; i < 20; i++ {
		require.NoError(t, f.Publish(ctx, bus, signup(i)))
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck subscriber never started")
	}
	for i := 0; i < 20; i++ {
		select {
		case <-tl.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("email handled only %d of 20 while the other subscriber hangs", i)
		}
	}
	assert.Equal(t, int64(1), f.Stats()["stuck"].Attempts, "the stuck one is still on its first event")
	close(release)
	require.NoError(t, run.Close(ctx))
}

// noNativeDLQ hides the memory provider's native dead-letter queue, so the
// portable layer publishes dead letters to each subscriber's own topic.
type noNativeDLQ struct{ *memory.Provider }

func (p noNativeDLQ) Capabilities() driver.Capabilities {
	c := p.Provider.Capabilities()
	c.NativeDeadLetter = false
	return c
}

func TestEachSubscriberHasItsOwnDeadLetterTopic(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{AutoCreate: true})
	bus, err := crossbus.New(noNativeDLQ{mem})
	require.NoError(t, err)
	defer bus.Close(ctx)
	dead := map[string]chan string{"sms-dead": make(chan string, 10), "push-dead": make(chan string, 10)}
	for topic, ch := range dead {
		_, err := bus.Subscribe(ctx, topic, "ops", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			ch <- e.ID()
			return nil
		}), crossbus.WithDeadLetterTopic("ops-dead"))
		require.NoError(t, err)
	}
	failOn := func(id string) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			if e.ID() == id {
				return crossbus.Permanent(errors.New("no"))
			}
			return nil
		})
	}
	f, err := fanout.New("user-signedup",
		fanout.Subscriber{Name: "sms", Handler: failOn("user-1"), DeadLetterTopic: "sms-dead"},
		fanout.Subscriber{Name: "push", Handler: failOn("user-2"), DeadLetterTopic: "push-dead"},
	)
	require.NoError(t, err)
	run, err := f.Start(ctx, bus)
	require.NoError(t, err)
	defer run.Close(ctx)
	for i := 0; i < 3; i++ {
		require.NoError(t, f.Publish(ctx, bus, signup(i)))
	}
	for topic, want := range map[string]string{"sms-dead": "user-1", "push-dead": "user-2"} {
		select {
		case id := <-dead[topic]:
			assert.Equal(t, want, id, topic)
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing reached %s", topic)
		}
	}
	select {
	case id := <-dead["sms-dead"]:
		t.Fatalf("unexpected second dead letter %s", id)
	case <-time.After(50 * time.Millisecond):
	}
	// Without a native queue and without a dead-letter topic, Start refuses:
	// failed events would have nowhere to go.
	g, err := fanout.New("user-signedup", fanout.Subscriber{Name: "nowhere", Handler: failOn("x")})
	require.NoError(t, err)
	_, err = g.Start(ctx, bus)
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestMountRunsSubscribersOnARouter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, mem := openBus(t)
	tl := newTally()
	f, err := fanout.New("user-signedup",
		fanout.Subscriber{Name: "sub-a", Handler: tl.handler("a", nil)},
		fanout.Subscriber{Name: "sub-b", Handler: tl.handler("b", nil)},
	)
	require.NoError(t, err)
	// Subscriptions exist before the router runs, as provisioned ones would.
	for _, n := range f.Names() {
		require.NoError(t, mem.CreateSubscription(ctx, f.Topic(), n, false))
	}
	r, err := crossbus.NewRouter(bus)
	require.NoError(t, err)
	require.NoError(t, f.Mount(r))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.NoError(t, f.Publish(ctx, bus, signup(1)))
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case n := <-tl.done:
			got[n] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v handled", got)
		}
	}
	cancel()
	require.NoError(t, <-done)
}

func TestNewValidates(t *testing.T) {
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })
	for name, tc := range map[string]struct {
		topic string
		subs  []fanout.Subscriber
		want  error
	}{
		"NoTopic":       {"", []fanout.Subscriber{{Name: "sms", Handler: h}}, crossbus.ErrInvalidName},
		"BadTopic":      {"user.signedup", []fanout.Subscriber{{Name: "sms", Handler: h}}, crossbus.ErrInvalidName},
		"NoSubscribers": {"signups", nil, crossbus.ErrInvalidOption},
		"NoName":        {"signups", []fanout.Subscriber{{Handler: h}}, crossbus.ErrInvalidName},
		"NoHandler":     {"signups", []fanout.Subscriber{{Name: "sms"}}, crossbus.ErrInvalidOption},
		"Duplicate":     {"signups", []fanout.Subscriber{{Name: "sms", Handler: h}, {Name: "sms", Handler: h}}, crossbus.ErrInvalidOption},
		"BadRetry":      {"signups", []fanout.Subscriber{{Name: "sms", Handler: h, Retry: fanout.Retry(crossbus.RetryPolicy{MaxAttempts: -1})}}, crossbus.ErrInvalidOption},
		"NegativeConc":  {"signups", []fanout.Subscriber{{Name: "sms", Handler: h, Concurrency: -1}}, crossbus.ErrInvalidOption},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := fanout.New(tc.topic, tc.subs...)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}
