package servicebus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// env is a broker with topic "topic" and subscription "sub", a crossbus bus over
// the provider, and a raw SDK client.
type env struct {
	t      *testing.T
	srv    *sbtest.Server
	p      *servicebus.Provider
	bus    *crossbus.Bus
	client *azservicebus.Client
	ctx    context.Context
	topic  string
	sub    string
}

type envConfig struct {
	server   sbtest.Options
	sub      sbtest.EntityOptions
	provider servicebus.Options
}

type envOption func(*envConfig)

func withSubscription(o sbtest.EntityOptions) envOption { return func(c *envConfig) { c.sub = o } }
func withProvider(o servicebus.Options) envOption       { return func(c *envConfig) { c.provider = o } }
func withServer(o sbtest.Options) envOption             { return func(c *envConfig) { c.server = o } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	cfg := envConfig{sub: sbtest.EntityOptions{LockDuration: lockDuration}, provider: servicebus.Options{LockDuration: lockDuration}}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := sbtest.NewServer(cfg.server)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	require.NoError(t, srv.CreateTopic("topic", sbtest.EntityOptions{}))
	require.NoError(t, srv.CreateSubscription("topic", "sub", cfg.sub))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cfg.provider.ConnectionString = srv.ConnectionString()
	p, err := servicebus.New(ctx, cfg.provider)
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return &env{t: t, srv: srv, p: p, bus: bus, client: client, ctx: ctx, topic: "topic", sub: "sub"}
}

// rawSend sends messages to the topic with the SDK alone.
func (e *env) rawSend(msgs ...*azservicebus.Message) {
	e.t.Helper()
	s, err := e.client.NewSender(e.topic, nil)
	require.NoError(e.t, err)
	defer s.Close(e.ctx)
	for _, m := range msgs {
		require.NoError(e.t, s.SendMessage(e.ctx, m, nil))
	}
}

// recorder collects what a handler saw.
type recorder struct {
	mu       sync.Mutex
	events   []crossbus.Event
	attempts []int
	times    []time.Time
	changed  chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) handler(fail func(ctx context.Context, ev *crossbus.Event) error) crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		r.mu.Lock()
		r.events = append(r.events, ev.Clone())
		r.attempts = append(r.attempts, info.Attempt)
		r.times = append(r.times, time.Now())
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
		if fail != nil {
			return fail(ctx, ev)
		}
		return nil
	})
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// wait waits until at least n handlings happened.
func (r *recorder) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for r.len() < n {
		select {
		case <-r.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("handled %d of %d within %v", r.len(), n, timeout)
		}
	}
}

func (e *env) subscribe(h crossbus.Handler, opts ...crossbus.RouteOption) *crossbus.Subscription {
	e.t.Helper()
	s, err := e.bus.Subscribe(e.ctx, e.topic, e.sub, h, opts...)
	require.NoError(e.t, err)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// consumeOne subscribes and returns the first event handled.
func (e *env) consumeOne() *crossbus.Event {
	e.t.Helper()
	rec := newRecorder()
	e.subscribe(rec.handler(nil))
	rec.wait(e.t, 1, 20*time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return &rec.events[0]
}

// deadLetters reads n events from the subscription's dead-letter queue.
func (e *env) deadLetters(n int) []crossbus.Event {
	e.t.Helper()
	r, err := e.p.SubscribeDeadLetters(e.ctx, e.topic, e.sub)
	require.NoError(e.t, err)
	defer r.Close(context.Background())
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	var out []crossbus.Event
	buf := make([]driver.Delivery, 10)
	for len(out) < n {
		k, err := r.Receive(ctx, buf)
		require.NoError(e.t, err, "dead letters: have %d of %d", len(out), n)
		for _, d := range buf[:k] {
			out = append(out, d.Event().Clone())
			require.NoError(e.t, d.Ack(ctx))
		}
	}
	return out
}

func fast(attempts int, backoff time.Duration) crossbus.RetryPolicy {
	return crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: backoff, MaxBackoff: backoff, Multiplier: 1, Jitter: crossbus.NoJitter}
}
