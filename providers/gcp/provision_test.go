package gcp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
)

// A subscription filter pushes a route's filter down to Pub/Sub: only
// matching messages are delivered at all.
func TestSubscriptionFilterPushDown(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	require.NoError(t, p.CreateSubscription(ctx, "orders", "placed-only", gcp.SubscriptionConfig{
		Filter: `attributes.ce-type = "com.example.order.placed"`}))
	b := newBus(t, p)
	placed := crossbus.NewEvent("com.example.order.placed", "/shop")
	cancelled := crossbus.NewEvent("com.example.order.cancelled", "/shop")
	placed2 := crossbus.NewEvent("com.example.order.placed", "/shop")
	require.NoError(t, b.Publish(ctx, "orders", &placed, &cancelled, &placed2))

	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "placed-only"})
	require.NoError(t, err)
	defer r.Close(ctx)
	seen := map[string]bool{}
	for len(seen) < 2 {
		for _, d := range receive(t, r, 10) {
			seen[d.Event().ID()] = true
			require.NoError(t, d.Ack(ctx))
		}
	}
	assert.Equal(t, map[string]bool{placed.ID(): true, placed2.ID(): true}, seen)
	rctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	_, err = r.Receive(rctx, make([]driver.Delivery, 1))
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the cancelled order never reaches this subscription")
}

func TestCreateSubscriptionSetsThePolicies(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	raw := newRawClient(t, srv)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "t"))
	cfg := gcp.SubscriptionConfig{Ordered: true, AckDeadline: 30 * time.Second, DeadLetterTopic: "t-dead", MaxDeliveryAttempts: 7,
		MinBackoff: time.Second, MaxBackoff: time.Minute}
	require.NoError(t, p.CreateSubscription(ctx, "t", "s", cfg))
	require.NoError(t, p.CreateSubscription(ctx, "t", "s", cfg), "creating again is a no-op")
	s, err := raw.SubscriptionAdminClient.GetSubscription(ctx, &pb.GetSubscriptionRequest{Subscription: "projects/" + project + "/subscriptions/s"})
	require.NoError(t, err)
	assert.True(t, s.EnableMessageOrdering)
	assert.Equal(t, int32(30), s.AckDeadlineSeconds)
	assert.Equal(t, "projects/"+project+"/topics/t-dead", s.DeadLetterPolicy.DeadLetterTopic)
	assert.Equal(t, int32(7), s.DeadLetterPolicy.MaxDeliveryAttempts)
	assert.Equal(t, time.Second, s.RetryPolicy.MinimumBackoff.AsDuration())
	dl, err := raw.SubscriptionAdminClient.GetSubscription(ctx, &pb.GetSubscriptionRequest{Subscription: "projects/" + project + "/subscriptions/" + gcp.DeadLetterSubscriptionName("s")})
	require.NoError(t, err, "a subscription keeps the dead letters from the start")
	assert.Equal(t, "projects/"+project+"/topics/t-dead", dl.Topic)

	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "t", Name: "s"})
	require.NoError(t, err)
	defer r.Close(ctx)
	caps := r.(driver.ReceiverCapabilities).Capabilities()
	assert.True(t, caps.NativeDeadLetter)
	assert.True(t, caps.Ordering)
	assert.Equal(t, 30*time.Second, caps.DefaultAckDeadline)
}

func TestCreateSubscriptionRefusesInvalidSettings(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "t"))
	tests := map[string]struct {
		cfg  gcp.SubscriptionConfig
		want string
	}{
		"ack deadline too short": {gcp.SubscriptionConfig{AckDeadline: 5 * time.Second}, "AckDeadline"},
		"ack deadline too long":  {gcp.SubscriptionConfig{AckDeadline: 11 * time.Minute}, "AckDeadline"},
		"too few attempts":       {gcp.SubscriptionConfig{DeadLetterTopic: "d", MaxDeliveryAttempts: 3}, "MaxDeliveryAttempts must be 5..100"},
		"attempts without topic": {gcp.SubscriptionConfig{MaxDeliveryAttempts: 10}, "needs a DeadLetterTopic"},
		"backoff reversed":       {gcp.SubscriptionConfig{MinBackoff: time.Minute, MaxBackoff: time.Second}, "MinBackoff"},
		"filter too long":        {gcp.SubscriptionConfig{Filter: `attributes.ce-type = "` + strings.Repeat("x", 250) + `"`}, "256 bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := p.CreateSubscription(ctx, "t", "s-"+name, tc.cfg)
			require.ErrorIs(t, err, crossbus.ErrInvalidOption)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	err := p.CreateSubscription(ctx, "no-such-topic", "s", gcp.SubscriptionConfig{})
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
}
