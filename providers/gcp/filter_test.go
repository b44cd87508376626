package gcp_test

import (
	"context"
	"sync"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
)

// receiveQuiet receives until no delivery arrives for quiet, acking each,
// and returns the types of the events delivered.
func receiveQuiet(t *testing.T, r driver.Receiver, quiet time.Duration) []string {
	t.Helper()
	var types []string
	buf := make([]driver.Delivery, 10)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		n, err := r.Receive(ctx, buf)
		cancel()
		for _, d := range buf[:n] {
			types = append(types, d.Event().Type())
			require.NoError(t, d.Ack(context.Background()))
		}
		if err != nil {
			return types
		}
	}
}

// A subscription AutoCreate makes for a route carries the route's pattern
// as its Pub/Sub filter: the service never delivers an excluded event, and
// the receiver reports the filter as exact, so the route skips matching.
func TestAutoCreateInstallsTheRouteFilter(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv, func(o *gcp.Options) { o.AutoCreate = true })
	ctx := context.Background()
	pattern := crossbus.MustPattern(`{"type":["order.placed","order.paid"],"source":[{"prefix":"/shop/"}]}`)
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "billing", FilterPattern: pattern.String()})
	require.NoError(t, err)
	defer r.Close(ctx)

	sub, err := p.Client().SubscriptionAdminClient.GetSubscription(ctx, &pb.GetSubscriptionRequest{Subscription: "projects/" + project + "/subscriptions/billing"})
	require.NoError(t, err)
	want, exact, err := gcp.SubscriptionFilter(pattern)
	require.NoError(t, err)
	assert.True(t, exact)
	assert.Equal(t, want, sub.GetFilter(), "the subscription's filter")
	assert.Equal(t, driver.NativeFilter{Expression: want, Exact: true}, r.(driver.NativeFiltering).NativeFilter())

	b := newBus(t, p)
	mk := func(typ, source string) *crossbus.Event { e := crossbus.NewEvent(typ, source); return &e }
	require.NoError(t, b.Publish(ctx, "orders",
		mk("order.cancelled", "/shop/eu"), mk("order.placed", "/warehouse/eu"), mk("Order.Placed", "/shop/eu"),
		mk("order.placed", "/shop/eu"), mk("order.paid", "/shop/us")))
	got := receiveQuiet(t, r, 1500*time.Millisecond)
	assert.ElementsMatch(t, []string{"order.placed", "order.paid"}, got, "only matching events are delivered")
}

// Conditions Pub/Sub cannot express make the filter a superset: the
// subscription filters what it can, the receiver says it is not exact, and
// routes keep matching.
func TestSupersetFilterIsNotExact(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv, func(o *gcp.Options) { o.AutoCreate = true })
	ctx := context.Background()
	pattern := crossbus.MustPattern(`{"type":["order.placed"],"data":{"total":[{"numeric":[">",100]}]}}`)
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "big", FilterPattern: pattern.String()})
	require.NoError(t, err)
	defer r.Close(ctx)
	nf := r.(driver.NativeFiltering).NativeFilter()
	assert.Equal(t, `attributes.ce-type = "order.placed"`, nf.Expression)
	assert.False(t, nf.Exact)

	b := newBus(t, p)
	var mu sync.Mutex
	var handled []int
	done := make(chan struct{}, 4)
	_, err = b.Subscribe(ctx, "orders", "big", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		var d struct{ Total int }
		_ = e.DataAs(&d)
		mu.Lock()
		handled = append(handled, d.Total)
		mu.Unlock()
		done <- struct{}{}
		return nil
	}), crossbus.WithFilter(pattern), crossbus.WithConcurrency(1), crossbus.WithDeadLetterTopic("dead-letters"))
	require.NoError(t, err)
	mk := func(typ string, total int) *crossbus.Event {
		e := crossbus.NewEvent(typ, "/shop")
		require.NoError(t, crossbus.SetData(&e, map[string]int{"total": total}))
		return &e
	}
	require.NoError(t, b.Publish(ctx, "orders", mk("order.placed", 50), mk("order.cancelled", 500), mk("order.placed", 500)))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the matching event was not handled")
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{500}, handled, "the route matched the data condition locally")
}

// A subscription created with another filter is reported as it is and not
// trusted as exact.
func TestForeignFilterIsNotExact(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", gcp.SubscriptionConfig{Filter: `hasPrefix(attributes.ce-type, "order.")`}))
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "billing",
		FilterPattern: crossbus.MustPattern(`{"type":["order.placed"]}`).String()})
	require.NoError(t, err)
	defer r.Close(ctx)
	assert.Equal(t, driver.NativeFilter{Expression: `hasPrefix(attributes.ce-type, "order.")`}, r.(driver.NativeFiltering).NativeFilter())
}
