package eventgrid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
)

// Event Grid counts a delivery for every receive, and drops an event (or
// moves it to the subscription's dead-letter destination) at the maximum
// delivery count, 10 at most. Reading the dead letters of a route from a
// subscription of its dead-letter topic receives each of them, so reads
// re-publish the dead letters delivered often: they stay listed however
// often they are read, with the same IDs.
func TestDeadLettersOutlastTheMaxDeliveryCount(t *testing.T) {
	srv := newServer(t)
	cfg := egtest.SubscriptionConfig{LockDuration: 2 * time.Second, MaxDeliveryCount: 10}
	require.NoError(t, srv.CreateTopic("orders"))
	require.NoError(t, srv.CreateSubscription("orders", "billing", cfg))
	require.NoError(t, srv.CreateTopic("dead"))
	require.NoError(t, srv.CreateSubscription("dead", "ops", cfg))
	o := namespaceOptions(srv)
	o.LockDuration = cfg.LockDuration
	b := newBus(t, newNamespace(t, o))
	ctx := testCtx(t)
	s, err := b.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return crossbus.Permanent(errors.New("card declined"))
	}), crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	const n = 3
	for range n {
		ev := crossbus.NewEvent("com.example.order", "/shop")
		require.NoError(t, b.Publish(ctx, "orders", &ev))
	}
	d, err := ops.NewDeadLetters(b, ops.Source{Topic: "orders", Subscription: "billing", DeadLetterTopic: "dead", DeadLetterSubscription: "ops"},
		ops.Options{Wait: 3 * time.Second, Idle: 300 * time.Millisecond})
	require.NoError(t, err)
	var first ops.Page
	require.Eventually(t, func() bool {
		first, err = d.List(ctx, ops.ListOptions{})
		return err == nil && first.Total == n
	}, 10*time.Second, 100*time.Millisecond)
	for read := range 2 * cfg.MaxDeliveryCount {
		p, err := d.List(ctx, ops.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, n, p.Total, "read %d: every dead letter is still there", read+2)
		for i := range p.Items {
			require.Equal(t, first.Items[i].ID, p.Items[i].ID, "read %d: same IDs", read+2)
		}
	}
}
