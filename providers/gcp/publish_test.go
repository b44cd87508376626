package gcp_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// failKeyOnce fails the first publish request whose messages carry the
// given ordering key, as a service error would.
type failKeyOnce struct {
	key    string
	mu     sync.Mutex
	failed bool
}

func (f *failKeyOnce) React(req any) (bool, any, error) {
	r, ok := req.(*pb.PublishRequest)
	if !ok || len(r.Messages) == 0 || r.Messages[0].OrderingKey != f.key {
		return false, nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed {
		return false, nil, nil
	}
	f.failed = true
	return true, nil, status.Error(codes.FailedPrecondition, "injected publish failure")
}

func keyed(key string, n int) *crossbus.Event {
	e := crossbus.NewEvent("com.example.step", "/t")
	crossbus.SetPartitionKey(&e, key)
	e.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%04d", n))
	return &e
}

func TestOrderingKeyPublishFailureIsReportedAndResumed(t *testing.T) {
	srv := newServer(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: &failKeyOnce{key: "k1"}})
	p := newProvider(t, srv)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "steps"))
	require.NoError(t, p.CreateSubscription(ctx, "steps", "ordered", gcp.SubscriptionConfig{Ordered: true}))
	b := newBus(t, p)

	batch := []*crossbus.Event{keyed("k1", 1), keyed("k2", 1), keyed("k1", 2), keyed("k1", 3)}
	err := b.Publish(ctx, "steps", batch...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{0, 2, 3}, pe.FailedIndexes(), "every k1 event failed; k2 went through")
	assert.Contains(t, err.Error(), "injected publish failure")

	// The caller retries exactly the failed events: publishing on k1 was
	// resumed, so they are accepted, in order.
	require.NoError(t, b.Publish(ctx, "steps", batch[0], batch[2], batch[3]))

	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "steps", Name: "ordered", Ordered: true})
	require.NoError(t, err)
	defer r.Close(ctx)
	var k1 []string
	buf := make([]driver.Delivery, 10)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for got := 0; got < 4; {
		n, err := r.Receive(rctx, buf)
		require.NoError(t, err)
		for _, d := range buf[:n] {
			if crossbus.PartitionKey(d.Event()) == "k1" {
				k1 = append(k1, crossbus.ExtensionString(d.Event(), crossbus.ExtSequence))
			}
			require.NoError(t, d.Ack(rctx))
			got++
		}
	}
	assert.Equal(t, []string{"0001", "0002", "0003"}, k1, "k1 arrives in publish order after the retry")
}

func TestPublishToUnknownTopicIsNotFound(t *testing.T) {
	srv := newServer(t)
	b := newBus(t, newProvider(t, srv))
	err := b.Publish(context.Background(), "missing", keyed("k", 1))
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
	assert.Contains(t, err.Error(), "missing")
}

func TestPublishRefusesWhatPubSubWouldReject(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	require.NoError(t, p.CreateTopic(context.Background(), "orders"))
	b := newBus(t, p)
	long := keyed(strings.Repeat("k", 1025), 1)
	ok := keyed("k", 2)
	err := b.Publish(context.Background(), "orders", long, ok)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{0}, pe.FailedIndexes())
	assert.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "ordering key limit of 1024 bytes")
	assert.Len(t, srv.Messages(), 1, "only the valid event was sent")
}

func TestLaterEventsOfAFailedKeyAreHeldBack(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	require.NoError(t, p.CreateTopic(context.Background(), "orders"))
	tooBig := keyed("k", 1)
	require.NoError(t, crossbus.SetData(tooBig, make([]byte, 10_000_001)))
	// Provider.Publish directly: the bus would refuse the oversized event
	// before it reaches the provider.
	err := p.Publish(context.Background(), "orders", []*crossbus.Event{tooBig, keyed("k", 2), keyed("j", 1)})
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{0, 1}, pe.FailedIndexes(), "k's second event must not overtake its first")
	assert.ErrorIs(t, pe.Failed[0].Err, crossbus.ErrTooLarge)
	assert.Contains(t, pe.Failed[1].Err.Error(), "earlier event with the same partition key failed")
	require.Len(t, srv.Messages(), 1)
	assert.Equal(t, "j", srv.Messages()[0].OrderingKey)
}

func TestProviderCapabilities(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	c := p.Capabilities()
	assert.True(t, c.Ordering)
	assert.False(t, c.NativeDeadLetter, "per subscription, reported by receivers")
	assert.True(t, c.DelayedRedelivery)
	assert.Equal(t, 600*time.Second, c.MaxRedeliveryDelay)
	assert.True(t, c.LeaseExtension)
	assert.Equal(t, 1000, c.MaxBatchCount)
	assert.Less(t, c.MaxEventBytes, 10_000_000)
	assert.Equal(t, 10*time.Second, c.DefaultAckDeadline)
	assert.False(t, newProvider(t, srv, func(o *gcp.Options) { o.DisableOrderingKeys = true }).Capabilities().Ordering)
}
