package gcp_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
)

type fixture struct {
	srv *pstest.Server
	p   *gcp.Provider
	b   *crossbus.Bus
}

func newFixture(t *testing.T, cfg gcp.SubscriptionConfig, mod ...func(*gcp.Options)) *fixture {
	t.Helper()
	srv := newServer(t)
	p := newProvider(t, srv, mod...)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", cfg))
	return &fixture{srv: srv, p: p, b: newBus(t, p)}
}

func (f *fixture) publish(t *testing.T, n int) []*crossbus.Event {
	t.Helper()
	evs := make([]*crossbus.Event, n)
	for i := range evs {
		e := crossbus.NewEvent("com.example.t", "/t")
		evs[i] = &e
	}
	require.NoError(t, f.b.Publish(context.Background(), "orders", evs...))
	return evs
}

func (f *fixture) receiver(t *testing.T, spec driver.SubscriptionSpec) driver.Receiver {
	t.Helper()
	if spec.Name == "" {
		spec.Topic, spec.Name = "orders", "billing"
	}
	r, err := f.p.Subscribe(context.Background(), spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func receive(t *testing.T, r driver.Receiver, max int) []driver.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, max)
	n, err := r.Receive(ctx, buf)
	require.NoError(t, err)
	return buf[:n]
}

// modacks returns the ack deadlines (seconds) the server received for the
// message that carries event id.
func (f *fixture) modacks(t *testing.T, eventID string) []int32 {
	t.Helper()
	for _, m := range f.srv.Messages() {
		if m.Attributes["ce-id"] == eventID {
			var out []int32
			for _, ma := range m.Modacks {
				out = append(out, ma.AckDeadline)
			}
			return out
		}
	}
	t.Fatalf("no message for event %s", eventID)
	return nil
}

func (f *fixture) acks(eventID string) int {
	for _, m := range f.srv.Messages() {
		if m.Attributes["ce-id"] == eventID {
			return m.Acks
		}
	}
	return -1
}

func TestSettlementMapsOntoAcknowledgeAndModifyAckDeadline(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	evs := f.publish(t, 3)
	r := f.receiver(t, driver.SubscriptionSpec{Topic: "orders", Name: "billing", AckDeadline: 10 * time.Second})
	ds := receive(t, r, 3)
	require.Len(t, ds, 3)
	ctx := context.Background()
	byID := map[string]driver.Delivery{}
	for _, d := range ds {
		byID[d.Event().ID()] = d
	}
	acked, nacked, extended := byID[evs[0].ID()], byID[evs[1].ID()], byID[evs[2].ID()]

	require.NoError(t, acked.Ack(ctx))
	require.NoError(t, nacked.Nack(ctx, 2500*time.Millisecond))
	require.NoError(t, extended.(driver.LeaseExtender).ExtendLease(ctx, 45*time.Second))
	assert.Error(t, acked.Ack(ctx), "a second settlement is refused")
	assert.Error(t, acked.Nack(ctx, 0))

	eventually(t, 5*time.Second, "settlements sent", func() bool {
		return f.acks(evs[0].ID()) == 1 && len(f.modacks(t, evs[1].ID())) == 1 && len(f.modacks(t, evs[2].ID())) == 1
	})
	assert.Equal(t, []int32{3}, f.modacks(t, evs[1].ID()), "Nack(2.5s) is ModifyAckDeadline(3): never earlier than asked")
	assert.Equal(t, []int32{45}, f.modacks(t, evs[2].ID()), "ExtendLease is ModifyAckDeadline")
	assert.Empty(t, f.modacks(t, evs[0].ID()), "the subscription's deadline is the route's: no receipt modack")
	require.NoError(t, extended.Ack(ctx))
}

func TestNackWithDelayRedeliversAfterTheDelay(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	f.publish(t, 1)
	r := f.receiver(t, driver.SubscriptionSpec{})
	d := receive(t, r, 1)[0]
	nackedAt := time.Now()
	require.NoError(t, d.Nack(context.Background(), 1500*time.Millisecond))
	again := receive(t, r, 1)[0]
	assert.GreaterOrEqual(t, time.Since(nackedAt), 1500*time.Millisecond, "redelivered only after the delay")
	assert.Equal(t, d.Event().ID(), again.Event().ID())
	assert.Equal(t, 2, again.Attempt(), "without a dead-letter policy the receiver counts attempts")
	require.NoError(t, again.Ack(context.Background()))
}

func TestReceiptModackSetsTheRoutesLease(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	evs := f.publish(t, 1)
	r := f.receiver(t, driver.SubscriptionSpec{Topic: "orders", Name: "billing", AckDeadline: 30 * time.Second})
	assert.Equal(t, 30*time.Second, r.(driver.ReceiverCapabilities).Capabilities().DefaultAckDeadline)
	d := receive(t, r, 1)[0]
	eventually(t, 5*time.Second, "receipt modack", func() bool { return len(f.modacks(t, evs[0].ID())) > 0 })
	assert.Equal(t, []int32{30}, f.modacks(t, evs[0].ID()))
	require.NoError(t, d.Ack(context.Background()))
}

func TestAttemptsComeFromPubSubWithADeadLetterPolicy(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{DeadLetterTopic: "orders-dlq", MaxDeliveryAttempts: 10})
	f.publish(t, 1)
	r := f.receiver(t, driver.SubscriptionSpec{})
	caps := r.(driver.ReceiverCapabilities).Capabilities()
	assert.True(t, caps.NativeDeadLetter)
	var attempts []int
	for i := 0; i < 3; i++ {
		d := receive(t, r, 1)[0]
		attempts = append(attempts, d.Attempt())
		if i < 2 {
			require.NoError(t, d.Nack(context.Background(), 0))
		} else {
			require.NoError(t, d.Ack(context.Background()))
		}
	}
	assert.Equal(t, []int{1, 2, 3}, attempts, "Pub/Sub's delivery attempt")
}

func TestFlowControlBoundsUnsettledDeliveries(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{}, func(o *gcp.Options) { o.MaxOutstandingMessages = 3 })
	f.publish(t, 10)
	r := f.receiver(t, driver.SubscriptionSpec{})
	first := receive(t, r, 10)
	require.Len(t, first, 3, "no more than MaxOutstandingMessages at once")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := r.Receive(ctx, make([]driver.Delivery, 10))
	require.ErrorIs(t, err, context.DeadlineExceeded, "blocked while 3 are unsettled, though 7 wait")

	require.NoError(t, first[0].Ack(context.Background()))
	next := receive(t, r, 10)
	assert.Len(t, next, 1, "one settled, one more pulled")
	for _, d := range append(first[1:], next...) {
		require.NoError(t, d.Ack(context.Background()))
	}
}

func TestFlowControlHoldsAcrossConcurrentReceives(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{}, func(o *gcp.Options) { o.MaxOutstandingMessages = 4 })
	f.publish(t, 20)
	r := f.receiver(t, driver.SubscriptionSpec{})
	var total atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			buf := make([]driver.Delivery, 10)
			for {
				n, err := r.Receive(ctx, buf)
				if err != nil {
					return
				}
				total.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(4), total.Load(), "four concurrent Receive calls share MaxOutstandingMessages")
}

func TestFlowControlBoundsBytes(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{}, func(o *gcp.Options) { o.MaxOutstandingBytes = 1 })
	f.publish(t, 2)
	r := f.receiver(t, driver.SubscriptionSpec{})
	first := receive(t, r, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := r.Receive(ctx, make([]driver.Delivery, 10))
	require.ErrorIs(t, err, context.DeadlineExceeded, "over MaxOutstandingBytes until the first is settled")
	require.NoError(t, first[0].Ack(context.Background()))
	require.Len(t, receive(t, r, 10), 1)
}

func TestCloseReturnsUnsettledDeliveriesAndStopsEverything(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	evs := f.publish(t, 2)
	r, err := f.p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "orders", Name: "billing"})
	require.NoError(t, err)
	ds := receive(t, r, 2)
	require.Len(t, ds, 2)
	require.NoError(t, ds[0].Ack(context.Background()))

	blocked := make(chan error, 1)
	go func() {
		_, err := r.Receive(context.Background(), make([]driver.Delivery, 1))
		blocked <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, r.Close(context.Background()))
	select {
	case err := <-blocked:
		assert.ErrorIs(t, err, crossbus.ErrClosed, "a Receive in flight ends with ErrClosed")
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the Receive in flight")
	}
	_, err = r.Receive(context.Background(), make([]driver.Delivery, 1))
	assert.ErrorIs(t, err, crossbus.ErrClosed)
	assert.Error(t, ds[1].Ack(context.Background()), "Close already returned it")

	unsettled := ds[1].Event().ID()
	assert.Contains(t, f.modacks(t, unsettled), int32(0), "Close nacks unsettled deliveries for immediate redelivery")
	assert.Equal(t, 1, f.acks(ds[0].Event().ID()), "settlements queued before Close were sent")
	other := f.receiver(t, driver.SubscriptionSpec{})
	again := receive(t, other, 2)
	require.Len(t, again, 1)
	assert.Equal(t, unsettled, again[0].Event().ID())
	assert.NotEqual(t, evs[0].ID(), evs[1].ID())
}

func TestNoGoroutineOutlivesClose(t *testing.T) {
	srv := newServer(t)
	p, err := gcp.New(context.Background(), gcp.Options{Project: project, Endpoint: srv.Addr, Insecure: true})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", gcp.SubscriptionConfig{}))
	b, err := crossbus.New(p)
	require.NoError(t, err)
	done := make(chan struct{}, 20)
	require.NoError(t, p.CreateTopic(ctx, "dead"))
	_, err = b.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		done <- struct{}{}
		return nil
	}), crossbus.WithDeadLetterTopic("dead"), crossbus.WithConcurrency(4))
	require.NoError(t, err)
	e := crossbus.NewEvent("t", "/s")
	require.NoError(t, b.Publish(ctx, "orders", &e))
	<-done
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, b.Close(cctx))
	waitNoGoroutines(t, 5*time.Second)
}

func TestSubscribeErrors(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	ctx := context.Background()
	_, err := f.p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "missing"})
	assert.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
	require.NoError(t, f.p.CreateTopic(ctx, "other"))
	_, err = f.p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "other", Name: "billing"})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "billing receives from orders, not from other")
	assert.Contains(t, err.Error(), "projects/"+project+"/topics/orders")
}

func TestAutoCreateMakesMissingEntities(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv, func(o *gcp.Options) { o.AutoCreate = true })
	ctx := context.Background()
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "fresh", Name: "fresh-sub", Ordered: true})
	require.NoError(t, err)
	defer r.Close(ctx)
	assert.True(t, r.(driver.ReceiverCapabilities).Capabilities().Ordering, "created with ordering, as the route asked")
	b := newBus(t, p)
	e := crossbus.NewEvent("t", "/s")
	require.NoError(t, b.Publish(ctx, "fresh", &e))
	require.NoError(t, b.Publish(ctx, "another-fresh-topic", &e), "publishing creates the topic")
	got := receive(t, r, 1)
	assert.Equal(t, e.ID(), got[0].Event().ID())
}

func TestNativeDeadLetterPublishesToThePolicyTopic(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{DeadLetterTopic: "orders-dlq"})
	evs := f.publish(t, 1)
	r := f.receiver(t, driver.SubscriptionSpec{})
	d := receive(t, r, 1)[0]
	require.NoError(t, d.DeadLetter(context.Background(), crossbus.DeadLetterInfo{Reason: "card declined", Attempts: 1, Topic: "orders", Subscription: "billing"}))
	eventually(t, 5*time.Second, "the original acked", func() bool { return f.acks(evs[0].ID()) == 1 })

	dl, err := f.p.SubscribeDeadLetters(context.Background(), "orders", "billing")
	require.NoError(t, err)
	defer dl.Close(context.Background())
	got := receive(t, dl, 1)[0]
	info, ok := crossbus.DeadLetterInfoOf(got.Event())
	require.True(t, ok)
	assert.Equal(t, "card declined", info.Reason)
	assert.Equal(t, evs[0].ID(), got.Event().ID())
	require.NoError(t, got.Ack(context.Background()))
}

// refuseDeadLetterPublish answers publishes to dead-letter topics with
// PermissionDenied, as Pub/Sub does when the consumer's service account
// lacks roles/pubsub.publisher on the dead-letter topic.
type refuseDeadLetterPublish struct{}

func (refuseDeadLetterPublish) React(req any) (bool, any, error) {
	if r, ok := req.(*pb.PublishRequest); ok && strings.HasSuffix(r.Topic, "-dlq") {
		return true, nil, status.Error(codes.PermissionDenied, "no pubsub.topics.publish on the dead-letter topic")
	}
	return false, nil, nil
}

func TestDeadLetterFallsBackWhenThePolicyTopicRefuses(t *testing.T) {
	srv := newServer(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: refuseDeadLetterPublish{}})
	p := newProvider(t, srv)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", gcp.SubscriptionConfig{DeadLetterTopic: "orders-dlq"}))
	f := &fixture{srv: srv, p: p, b: newBus(t, p)}
	f.publish(t, 1)
	d := receive(t, f.receiver(t, driver.SubscriptionSpec{}), 1)[0]
	err := d.DeadLetter(ctx, crossbus.DeadLetterInfo{Reason: "x"})
	require.ErrorIs(t, err, crossbus.ErrNotSupported, "the route's portable dead-letter topic takes over")
	assert.Contains(t, err.Error(), "PermissionDenied")
	require.NoError(t, d.Nack(ctx, 0), "still unsettled after the failed dead-letter")
}

func TestPlainSubscriptionHasNoNativeDeadLetter(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	f.publish(t, 1)
	r := f.receiver(t, driver.SubscriptionSpec{})
	assert.False(t, r.(driver.ReceiverCapabilities).Capabilities().NativeDeadLetter)
	d := receive(t, r, 1)[0]
	assert.ErrorIs(t, d.DeadLetter(context.Background(), crossbus.DeadLetterInfo{Reason: "x"}), crossbus.ErrNotSupported)
	require.NoError(t, d.Ack(context.Background()))
	_, err := f.p.SubscribeDeadLetters(context.Background(), "orders", "billing")
	assert.ErrorIs(t, err, crossbus.ErrNotSupported)
}

// failPulls answers Pull with code while times > 0 (forever when times is
// negative).
type failPulls struct {
	code  codes.Code
	mu    sync.Mutex
	times int
}

func (f *failPulls) React(req any) (bool, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.times == 0 {
		return false, nil, nil
	}
	f.times--
	return true, nil, status.Error(f.code, "injected by the test")
}

// Pull errors that retrying cannot fix stop the subscription with the
// sentinel that says why; every other code is retried.
func TestPullErrorsStopOrRetryByTheirCode(t *testing.T) {
	for _, tc := range []struct {
		code  codes.Code
		stops error // nil: retried
	}{
		{codes.PermissionDenied, crossbus.ErrUnauthorized},
		{codes.Unauthenticated, crossbus.ErrUnauthorized},
		{codes.NotFound, crossbus.ErrSubscriptionNotFound},
		{codes.Unavailable, nil},
		{codes.ResourceExhausted, nil},
		{codes.Internal, nil},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			fail := &failPulls{code: tc.code, times: -1}
			if tc.stops == nil {
				fail.times = 3
			}
			srv := newServer(t, pstest.ServerReactorOption{FuncName: "Pull", Reactor: fail})
			p := newProvider(t, srv)
			ctx := context.Background()
			require.NoError(t, p.CreateTopic(ctx, "orders"))
			require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", gcp.SubscriptionConfig{}))
			require.NoError(t, p.CreateTopic(ctx, "dead"))
			b := newBus(t, p)
			handled := make(chan string, 1)
			s, err := b.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
				handled <- e.ID()
				return nil
			}), crossbus.WithDeadLetterTopic("dead"))
			require.NoError(t, err)
			if tc.stops != nil {
				select {
				case <-s.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the subscription kept retrying an error that retrying cannot fix")
				}
				require.ErrorIs(t, s.Err(), tc.stops)
				assert.ErrorContains(t, s.Err(), tc.code.String())
				assert.ErrorContains(t, s.Err(), "projects/"+project+"/subscriptions/billing")
				return
			}
			e := crossbus.NewEvent("com.example.t", "/t")
			require.NoError(t, b.Publish(ctx, "orders", &e))
			select {
			case id := <-handled:
				assert.Equal(t, e.ID(), id)
			case <-time.After(15 * time.Second):
				t.Fatal("the subscription did not recover from a transient error")
			}
			assert.NoError(t, s.Err())
		})
	}
}

// A lease extension followed at once by a Nack of the same message (both
// queued before the settler sends) ends with the Nack's deadline: the
// message comes back at once, not after the extended lease. The queued
// deadline changes of one message are not reordered.
func TestTheLastQueuedDeadlineOfAMessageWins(t *testing.T) {
	f := newFixture(t, gcp.SubscriptionConfig{})
	evs := f.publish(t, 8)
	r := f.receiver(t, driver.SubscriptionSpec{Topic: "orders", Name: "billing", AckDeadline: 10 * time.Second})
	var ds []driver.Delivery
	for len(ds) < len(evs) {
		ds = append(ds, receive(t, r, len(evs)-len(ds))...)
	}
	ctx := context.Background()
	for _, d := range ds {
		require.NoError(t, d.(driver.LeaseExtender).ExtendLease(ctx, 60*time.Second))
		require.NoError(t, d.Nack(ctx, 0))
	}
	for _, ev := range evs {
		eventually(t, 5*time.Second, "settlements sent", func() bool { return len(f.modacks(t, ev.ID())) > 0 })
		got := f.modacks(t, ev.ID())
		assert.Equal(t, int32(0), got[len(got)-1], "the Nack's deadline is the last one sent for %s: %v", ev.ID(), got)
	}
	again := 0
	for again < len(evs) {
		again += len(receive(t, r, len(evs)))
	}
}
