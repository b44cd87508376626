package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/patterns/bridge"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/memory"
	"gocloud.dev/blob/memblob"
)

func quick(attempts int) crossbus.RouteOption {
	return crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, Multiplier: 2})
}

func memBus(t *testing.T, opts memory.Options, busOpts ...crossbus.BusOption) (*crossbus.Bus, *memory.Provider) {
	t.Helper()
	opts.AutoCreate = true
	p := memory.New(opts)
	b, err := crossbus.New(p, busOpts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, p
}

func subscribe(t *testing.T, b *crossbus.Bus, topic, sub string, h crossbus.Handler, opts ...crossbus.RouteOption) {
	t.Helper()
	s, err := b.Subscribe(context.Background(), topic, sub, h, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func startBridge(t *testing.T, cfg bridge.Config, source *crossbus.Bus, topic, sub string, opts ...crossbus.RouteOption) *bridge.Bridge {
	t.Helper()
	br, err := bridge.New(cfg)
	require.NoError(t, err)
	s, err := br.Subscribe(context.Background(), source, topic, sub, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return br
}

// recorder keeps what a consumer handled, in order.
type recorder struct {
	mu     sync.Mutex
	events []crossbus.Event
}

func (r *recorder) handler() crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		r.mu.Lock()
		r.events = append(r.events, e.Clone())
		r.mu.Unlock()
		return nil
	})
}

func (r *recorder) snapshot() []crossbus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]crossbus.Event(nil), r.events...)
}

func (r *recorder) waitFor(t *testing.T, n int, within time.Duration) []crossbus.Event {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.snapshot()) >= n }, within, 10*time.Millisecond,
		"want %d events handled", n)
	return r.snapshot()
}

// From Service Bus (sbtest, sessions) to Pub/Sub (pstest, ordering keys):
// every event's id, source, time, partition key, trace context and
// extensions arrive; duplicates published on the source are handled once
// on the target; each key's events are handled in publish order.
func TestIdempotencyAndOrderAcrossProviders(t *testing.T) {
	ctx := context.Background()
	sb, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	require.NoError(t, sb.CreateTopic("orders", sbtest.EntityOptions{}))
	require.NoError(t, sb.CreateSubscription("orders", "to-gcp", sbtest.EntityOptions{RequiresSession: true}))
	sp, err := servicebus.New(ctx, servicebus.Options{ConnectionString: sb.ConnectionString()})
	require.NoError(t, err)
	azure, err := crossbus.New(sp)
	require.NoError(t, err)
	t.Cleanup(func() { _ = azure.Close(ctx) })

	ps := pstest.NewServer()
	t.Cleanup(func() { _ = ps.Close() })
	google, err := crossbus.Open(ctx, "gcppubsub://projects/bridge-test?endpoint="+ps.Addr+"&insecure=true&publishdelay=1ms")
	require.NoError(t, err)
	t.Cleanup(func() { _ = google.Close(ctx) })
	var gp *gcp.Provider
	require.True(t, google.As(&gp))
	require.NoError(t, gp.CreateTopic(ctx, "orders"))
	require.NoError(t, gp.CreateSubscription(ctx, "orders", "fulfil", gcp.SubscriptionConfig{Ordered: true}))

	var got recorder
	subscribe(t, google, "orders", "fulfil", got.handler(), crossbus.WithOrdering(), crossbus.WithDeadLetterTopic("orders-dead"),
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	br := startBridge(t, bridge.Config{Name: "orders-azure-gcp", Target: google, TargetTopic: "orders"},
		azure, "orders", "to-gcp", crossbus.WithOrdering(), crossbus.WithConcurrency(4))

	const keys, perKey = 4, 12
	var published []*crossbus.Event
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	for i := range perKey {
		for k := range keys {
			e := crossbus.NewEvent("com.example.order.step", "https://shop.example.com")
			crossbus.SetPartitionKey(&e, fmt.Sprintf("order-%d", k))
			require.NoError(t, crossbus.SetData(&e, map[string]int{"step": i}))
			e.SetExtension("tenant", "acme")
			e.SetExtension(crossbus.ExtTraceParent, fmt.Sprintf("00-%s-%016x-01", traceID, k*100+i+1))
			published = append(published, &e)
		}
	}
	for _, e := range published {
		require.NoError(t, azure.Publish(ctx, "orders", e))
	}
	// Duplicates, as a producer retrying after a lost answer sends them.
	for _, e := range published[:10] {
		dup := e.Clone()
		require.NoError(t, azure.Publish(ctx, "orders", &dup))
	}
	got.waitFor(t, keys*perKey, 60*time.Second)
	require.Eventually(t, func() bool { return br.Stats().Forwarded == int64(len(published)+10) }, 30*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // a duplicate handled late would show now
	handled := got.snapshot()
	require.Len(t, handled, keys*perKey, "each event handled once on the far side")

	byID := map[string]*crossbus.Event{}
	for _, e := range published {
		byID[e.ID()] = e
	}
	last := map[string]int{}
	for _, h := range handled {
		want := byID[h.ID()]
		require.NotNil(t, want, "unknown event %s", h.ID())
		assert.Equal(t, want.Source(), h.Source())
		assert.Equal(t, want.Type(), h.Type())
		assert.True(t, want.Time().Equal(h.Time()), "time kept")
		assert.Equal(t, crossbus.PartitionKey(want), crossbus.PartitionKey(&h))
		assert.Equal(t, "acme", crossbus.ExtensionString(&h, "tenant"))
		assert.Equal(t, []string{"orders-azure-gcp"}, bridge.Crossed(&h))
		assert.Contains(t, crossbus.ExtensionString(&h, crossbus.ExtTraceParent), traceID, "same trace")
		d, err := crossbus.DataAs[map[string]int](&h)
		require.NoError(t, err)
		key := crossbus.PartitionKey(&h)
		if prev, seen := last[key]; seen {
			assert.Greater(t, d["step"], prev, "key %s out of order", key)
		}
		last[key] = d["step"]
	}
	assert.Len(t, last, keys)
}

// Two bridges, one each way, under one name: an event crosses once and is
// not sent back.
func TestLoopProtection(t *testing.T) {
	ctx := context.Background()
	east, _ := memBus(t, memory.Options{})
	west, _ := memBus(t, memory.Options{})
	var onEast, onWest recorder
	subscribe(t, east, "orders", "app", onEast.handler())
	subscribe(t, west, "orders", "app", onWest.handler())
	toWest := startBridge(t, bridge.Config{Name: "east-west", Target: west, TargetTopic: "orders"}, east, "orders", "to-west")
	toEast := startBridge(t, bridge.Config{Name: "east-west", Target: east, TargetTopic: "orders"}, west, "orders", "to-east")

	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	require.NoError(t, east.Publish(ctx, "orders", &e))
	w := onWest.waitFor(t, 1, 10*time.Second)
	assert.Equal(t, e.ID(), w[0].ID())
	require.Eventually(t, func() bool { return toEast.Stats().LoopsStopped == 1 }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, onEast.snapshot(), 1, "the event is not sent back east")
	assert.Len(t, onWest.snapshot(), 1)
	assert.Equal(t, int64(1), toWest.Stats().Forwarded)
	assert.Equal(t, int64(0), toEast.Stats().Forwarded)

	// A ring of three bridges with their own names: the event goes round
	// once and stops at the first bridge it meets again.
	a, _ := memBus(t, memory.Options{})
	b, _ := memBus(t, memory.Options{})
	c, _ := memBus(t, memory.Options{})
	ab := startBridge(t, bridge.Config{Name: "a-b", Target: b, TargetTopic: "orders"}, a, "orders", "to-b")
	startBridge(t, bridge.Config{Name: "b-c", Target: c, TargetTopic: "orders"}, b, "orders", "to-c")
	startBridge(t, bridge.Config{Name: "c-a", Target: a, TargetTopic: "orders"}, c, "orders", "to-a")
	e2 := crossbus.NewEvent("com.example.order.placed", "/shop")
	require.NoError(t, a.Publish(ctx, "orders", &e2))
	require.Eventually(t, func() bool { return ab.Stats().LoopsStopped == 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, int64(1), ab.Stats().Forwarded)
}

// The target is down for a while: the bridge's attempts fail and are
// retried by the source route; after the recovery every event arrives,
// none lost, none dead-lettered.
func TestTargetOutage(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	cfg := srv.Config()
	cfg.RetryMaxAttempts = 1 // the outage reaches the bridge at once
	p, err := aws.New(ctx, aws.Options{Config: &cfg, WaitTime: time.Second})
	require.NoError(t, err)
	_, err = p.Provision(ctx, aws.Route{Subscription: "orders", Topic: "orders", MaxReceiveCount: 100})
	require.NoError(t, err)
	target, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = target.Close(ctx) })
	var got recorder
	subscribe(t, target, "orders", "orders", got.handler())

	source, mem := memBus(t, memory.Options{})
	br := startBridge(t, bridge.Config{Name: "mem-aws", Target: target, TargetTopic: "orders"}, source, "orders", "to-aws",
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 100, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Multiplier: 2}))

	restore := srv.InjectFault(awstest.Fault{Service: "sqs", Code: "ServiceUnavailable", Status: 503})
	const n = 20
	ids := map[string]bool{}
	for range n {
		e := crossbus.NewEvent("com.example.order.placed", "/shop")
		ids[e.ID()] = true
		require.NoError(t, source.Publish(ctx, "orders", &e))
	}
	require.Eventually(t, func() bool { return br.Stats().Failed >= 3*n }, 20*time.Second, 10*time.Millisecond, "attempts fail during the outage")
	time.Sleep(200 * time.Millisecond)
	assert.Empty(t, got.snapshot())
	assert.Zero(t, br.Stats().Forwarded)
	restore()
	handled := got.waitFor(t, n, 30*time.Second)
	seen := map[string]bool{}
	for _, h := range handled {
		seen[h.ID()] = true
	}
	assert.Equal(t, ids, seen, "every event arrived after the recovery")
	dead, err := mem.DeadLetters("orders", "to-aws")
	require.NoError(t, err)
	assert.Empty(t, dead)
}

// A target that refuses the event (here: too large, no claim check) has
// it dead-lettered at once on the source side, with the target's error.
func TestRefusedEventIsDeadLetteredOnTheSource(t *testing.T) {
	ctx := context.Background()
	source, mem := memBus(t, memory.Options{})
	target, _ := memBus(t, memory.Options{MaxEventBytes: 2000})
	startBridge(t, bridge.Config{Name: "to-small", Target: target, TargetTopic: "orders"}, source, "orders", "bridge", quick(5))
	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	require.NoError(t, crossbus.SetData(&e, make([]byte, 5000)))
	require.NoError(t, source.Publish(ctx, "orders", &e))
	var dead []crossbus.Event
	require.Eventually(t, func() bool {
		dead, _ = mem.DeadLetters("orders", "bridge")
		return len(dead) == 1
	}, 10*time.Second, 5*time.Millisecond)
	info, _ := crossbus.DeadLetterInfoOf(&dead[0])
	assert.Equal(t, 1, info.Attempts, "refused events are not retried")
	assert.Contains(t, info.Reason, `bridge "to-small": target topic "orders"`)
	assert.Contains(t, info.Reason, "over the provider limit of 2000 bytes")
	assert.Equal(t, e.ID(), dead[0].ID())
}

func TestFilterAndTransform(t *testing.T) {
	ctx := context.Background()
	source, mem := memBus(t, memory.Options{})
	target, _ := memBus(t, memory.Options{})
	var got recorder
	subscribe(t, target, "orders", "app", got.handler())
	startBridge(t, bridge.Config{Name: "eu-orders", Target: target, TargetTopic: "orders",
		Filter: crossbus.MustPattern(`{"data": {"region": ["eu"]}}`),
		Transform: func(ctx context.Context, e *crossbus.Event) error {
			if crossbus.ExtensionString(e, "poison") != "" {
				return crossbus.Permanent(errors.New("cannot map this event"))
			}
			e.SetExtension("region", "eu-west")
			return nil
		}}, source, "orders", "bridge", quick(3))
	for i, region := range []string{"us", "eu", "eu"} {
		e := crossbus.NewEvent("com.example.order.placed", "/shop")
		require.NoError(t, crossbus.SetData(&e, map[string]string{"region": region}))
		if i == 2 {
			e.SetExtension("poison", true)
		}
		require.NoError(t, source.Publish(ctx, "orders", &e))
	}
	h := got.waitFor(t, 1, 10*time.Second)
	assert.Equal(t, "eu-west", crossbus.ExtensionString(&h[0], "region"))
	require.Eventually(t, func() bool {
		dead, _ := mem.DeadLetters("orders", "bridge")
		return len(dead) == 1
	}, 10*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, got.snapshot(), 1)
}

// Both buses use one claim-check bucket: the reference crosses, the data is
// not written again, and the far consumer gets the data.
func TestClaimCheckReferenceCarriedAcross(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = bucket.Close() })
	store, err := claimcheck.New(bucket, "mem://shared", &claimcheck.Options{Reuse: -1}) // would write every time
	require.NoError(t, err)
	source, _ := memBus(t, memory.Options{}, claimcheck.Option(store, 64<<10))
	target, _ := memBus(t, memory.Options{}, claimcheck.Option(store, 64<<10))
	var got recorder
	subscribe(t, target, "invoices", "archive", got.handler())
	wire, err := crossbus.New(target.Provider()) // the target without the claim check: what went over its wire
	require.NoError(t, err)
	var raw recorder
	subscribe(t, wire, "invoices", "audit", raw.handler())
	startBridge(t, bridge.Config{Name: "invoices", Target: target, TargetTopic: "invoices"}, source, "invoices", "bridge")

	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	e := crossbus.NewEvent("com.example.invoice.attached", "/billing")
	require.NoError(t, crossbus.SetData(&e, data))
	require.NoError(t, source.Publish(ctx, "invoices", &e))
	attrs, err := bucket.Attributes(ctx, store.Key(data))
	require.NoError(t, err)
	written := attrs.ModTime

	h := got.waitFor(t, 1, 10*time.Second)
	assert.Equal(t, data, h[0].Data())
	r := raw.waitFor(t, 1, 10*time.Second)
	assert.Empty(t, r[0].Data())
	assert.Equal(t, store.Ref(store.Key(data)), claimcheck.Ref(&r[0]))
	attrs, err = bucket.Attributes(ctx, store.Key(data))
	require.NoError(t, err)
	assert.Equal(t, written, attrs.ModTime, "the bridge wrote nothing")
}

func TestConfigErrors(t *testing.T) {
	target, _ := memBus(t, memory.Options{})
	_, err := bridge.New(bridge.Config{Name: "x", Target: target, TargetTopic: "orders"})
	require.ErrorIs(t, err, crossbus.ErrInvalidName)
	_, err = bridge.New(bridge.Config{Name: "ok-name", TargetTopic: "orders"})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = bridge.New(bridge.Config{Name: "ok-name", Target: target, TargetTopic: "a b"})
	require.ErrorIs(t, err, crossbus.ErrInvalidName)
}
