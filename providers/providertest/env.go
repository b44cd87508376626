package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

func newEnv(t *testing.T, mk func(t *testing.T) Harness) *env {
	t.Helper()
	h := mk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, h: h, ctx: ctx}
	b := e.bus()
	e.f = h.Features().withDefaults(b.Capabilities())
	return e
}

// bus opens a new client and bus; the suite closes it at the end.
func (e *env) bus() *crossbus.Bus {
	e.t.Helper()
	p, err := e.h.NewProvider(e.ctx)
	require.NoError(e.t, err, "NewProvider")
	b, err := crossbus.New(p)
	require.NoError(e.t, err)
	e.buses = append(e.buses, b)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// name returns a unique entity name, valid on every cloud (letters, digits, '-').
func (e *env) name(kind string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	e.seq++
	return fmt.Sprintf("ct-%s-%s-%d", kind, hex.EncodeToString(r[:]), e.seq)
}

// fallbackDeadLetterTopic is a dead-letter topic shared by the routes of one
// subtest that set none of their own.
func (e *env) fallbackDeadLetterTopic() string {
	if e.fallbackDLT == "" {
		e.fallbackDLT = e.topic()
	}
	return e.fallbackDLT
}

func (e *env) topic() string {
	e.t.Helper()
	n := e.name("topic")
	require.NoError(e.t, e.h.CreateTopic(e.ctx, n), "CreateTopic")
	return n
}

func (e *env) subscription(topic string, opts SubscriptionOptions) string {
	e.t.Helper()
	n := e.name("sub")
	require.NoError(e.t, e.h.CreateSubscription(e.ctx, topic, n, opts), "CreateSubscription")
	return n
}

// deadLetters prepares dead-letter handling for a subscription: on providers
// with a readable native queue nothing is needed; otherwise a portable
// dead-letter topic and a subscription on it are created. read returns the
// dead letters once n have arrived.
type deadLetters struct {
	e       *env
	topic   string
	sub     string
	dlTopic string
	dlSub   string
	opts    []crossbus.RouteOption
}

func (e *env) deadLetters(b *crossbus.Bus, topic, sub string) *deadLetters {
	d := &deadLetters{e: e, topic: topic, sub: sub}
	if _, ok := b.Provider().(driver.DeadLetterReader); ok && b.Capabilities().NativeDeadLetter {
		return d // read through Bus.DeadLetters
	}
	d.dlTopic = e.topic()
	d.dlSub = e.subscription(d.dlTopic, SubscriptionOptions{})
	d.opts = []crossbus.RouteOption{crossbus.WithDeadLetterTopic(d.dlTopic)}
	return d
}

// read receives n dead letters (and fails the test if they do not come).
func (d *deadLetters) read(b *crossbus.Bus, n int) []crossbus.Event {
	e := d.e
	e.t.Helper()
	var recv driver.Receiver
	var err error
	if d.dlTopic == "" {
		recv, err = b.DeadLetters(e.ctx, d.topic, d.sub)
	} else {
		recv, err = b.Provider().Subscribe(e.ctx, driver.SubscriptionSpec{Topic: d.dlTopic, Name: d.dlSub})
	}
	require.NoError(e.t, err, "open dead-letter receiver")
	defer recv.Close(context.Background())
	ctx, cancel := context.WithTimeout(e.ctx, e.f.Timeout)
	defer cancel()
	var out []crossbus.Event
	buf := make([]driver.Delivery, 10)
	for len(out) < n {
		k, err := recv.Receive(ctx, buf)
		require.NoError(e.t, err, "receive dead letters: have %d of %d", len(out), n)
		for _, dl := range buf[:k] {
			out = append(out, dl.Event().Clone())
			require.NoError(e.t, dl.Ack(ctx))
		}
	}
	return out
}

// collector records what handlers saw.
type collector struct {
	mu       sync.Mutex
	events   []crossbus.Event
	attempts map[string][]int // event id -> attempts seen
	times    map[string][]time.Time
	count    map[string]int
	changed  chan struct{}
}

func newCollector() *collector {
	return &collector{attempts: map[string][]int{}, times: map[string][]time.Time{}, count: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (c *collector) record(ctx context.Context, ev *crossbus.Event) {
	info, _ := crossbus.DeliveryInfoFrom(ctx)
	c.mu.Lock()
	c.events = append(c.events, ev.Clone())
	c.attempts[ev.ID()] = append(c.attempts[ev.ID()], info.Attempt)
	c.times[ev.ID()] = append(c.times[ev.ID()], time.Now())
	c.count[ev.ID()]++
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

func (c *collector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// waitFor waits until cond holds or the timeout passes.
func (c *collector) waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s (distinct events handled: %d, handlings: %d)", timeout, what, c.distinct(), c.total())
		}
	}
}

func (c *collector) handler(fail func(ctx context.Context, ev *crossbus.Event) error) crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		c.record(ctx, ev)
		if fail != nil {
			return fail(ctx, ev)
		}
		return nil
	})
}

func newEvent(i int) *crossbus.Event {
	ev := crossbus.NewEvent("com.example.conformance.tested", "/providertest")
	_ = crossbus.SetData(&ev, map[string]int{"n": i})
	return &ev
}

func events(n int) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		out[i] = newEvent(i)
	}
	return out
}

// fastRetry retries quickly so tests stay short.
func fastRetry(attempts int) crossbus.RetryPolicy {
	return crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Multiplier: 2}
}

var errFlaky = errors.New("providertest: induced failure")
