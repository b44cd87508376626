package servicebus_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// brokerAdmin is an administration client for the test broker's
// management API.
func brokerAdmin(t testing.TB, srv *sbtest.Server) *admin.Client {
	t.Helper()
	ac, err := admin.NewClientFromConnectionString(srv.ConnectionString(),
		&admin.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	require.NoError(t, err)
	return ac
}

func autoCreateProvider(t *testing.T, srv *sbtest.Server) *servicebus.Provider {
	t.Helper()
	p, err := servicebus.New(context.Background(), servicebus.Options{ConnectionString: srv.ConnectionString(),
		LockDuration: 5 * time.Second, AutoCreate: true, Admin: brokerAdmin(t, srv)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// drain receives until nothing arrives for quiet, completing each message,
// and returns the types of the events delivered.
func drain(t *testing.T, r driver.Receiver, quiet time.Duration) []string {
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

// AutoCreate creates a route's missing topic and subscription with the
// route's pattern as the subscription's rule: Service Bus never delivers an
// excluded event, and the receiver reports the rule as exact.
func TestAutoCreateInstallsTheRouteFilterAsTheRule(t *testing.T) {
	srv := newServer(t)
	p := autoCreateProvider(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pattern := crossbus.MustPattern(`{"type":["order.placed","order.paid"],"source":[{"prefix":"/shop/"}]}`)
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "billing", FilterPattern: pattern.String()})
	require.NoError(t, err)
	defer r.Close(ctx)

	want, exact, err := servicebus.SQLFilter(pattern)
	require.NoError(t, err)
	require.True(t, exact)
	rules, err := srv.Rules("orders", "billing")
	require.NoError(t, err)
	assert.Equal(t, []sbtest.Rule{{Name: servicebus.DefaultRuleName, Filter: want}}, rules)
	assert.Equal(t, driver.NativeFilter{Expression: want, Exact: true}, r.(driver.NativeFiltering).NativeFilter())

	b, err := crossbus.New(p)
	require.NoError(t, err)
	mk := func(typ, source string) *crossbus.Event { e := crossbus.NewEvent(typ, source); return &e }
	require.NoError(t, b.Publish(ctx, "orders",
		mk("order.cancelled", "/shop/eu"), mk("order.placed", "/warehouse/eu"), mk("Order.Placed", "/shop/eu"),
		mk("order.placed", "/shop/eu"), mk("order.paid", "/shop/us")))
	assert.ElementsMatch(t, []string{"order.placed", "order.paid"}, drain(t, r, time.Second), "only matching events are delivered")
}

// An ordered route gets a session subscription; a subscription that exists
// is left as it is, and its true filter means no native filtering.
func TestAutoCreateMakesSessionsForOrderedRoutesAndKeepsExisting(t *testing.T) {
	srv := newServer(t)
	require.NoError(t, srv.CreateTopic("orders", sbtest.EntityOptions{}))
	require.NoError(t, srv.CreateSubscription("orders", "existing", sbtest.EntityOptions{}))
	p := autoCreateProvider(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pattern := crossbus.MustPattern(`{"type":["order.placed"]}`).String()

	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "existing", FilterPattern: pattern})
	require.NoError(t, err)
	defer r.Close(ctx)
	assert.Equal(t, driver.NativeFilter{}, r.(driver.NativeFiltering).NativeFilter(), "the existing subscription takes everything")
	rules, err := srv.Rules("orders", "existing")
	require.NoError(t, err)
	assert.Equal(t, []sbtest.Rule{{Name: sbtest.DefaultRuleName, Filter: sbtest.TrueFilter}}, rules, "left as it was")

	ordered, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "ledger", Ordered: true, FilterPattern: pattern})
	require.NoError(t, err)
	defer ordered.Close(ctx)
	assert.True(t, ordered.(driver.ReceiverCapabilities).Capabilities().Ordering, "a session subscription")
	assert.True(t, ordered.(driver.NativeFiltering).NativeFilter().Exact)
	sub, err := brokerAdmin(t, srv).GetSubscription(ctx, "orders", "ledger", nil)
	require.NoError(t, err)
	assert.True(t, *sub.RequiresSession)
	assert.Equal(t, "PT5S", *sub.LockDuration)

	// A queue is created too.
	pq, err := servicebus.New(ctx, servicebus.Options{ConnectionString: srv.ConnectionString(), Queues: []string{"jobs"},
		AutoCreate: true, Admin: brokerAdmin(t, srv)})
	require.NoError(t, err)
	defer pq.Close(ctx)
	q, err := pq.Subscribe(ctx, driver.SubscriptionSpec{Topic: "jobs", Name: "worker"})
	require.NoError(t, err)
	defer q.Close(ctx)
	c, err := srv.Counts("jobs")
	require.NoError(t, err)
	assert.Zero(t, c.Active)
}

// A pattern Service Bus cannot fully express becomes a superset rule: the
// route still matches locally, so its handler sees only matching events.
func TestAutoCreateSupersetRuleKeepsLocalMatching(t *testing.T) {
	srv := newServer(t)
	p := autoCreateProvider(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := crossbus.New(p)
	require.NoError(t, err)
	defer b.Close(ctx)
	pattern := crossbus.MustPattern(`{"type":["order.placed"],"data":{"total":[{"numeric":[">",100]}]}}`)
	got := make(chan int, 4)
	s, err := b.Subscribe(ctx, "orders", "big", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		var d struct{ Total int }
		_ = e.DataAs(&d)
		got <- d.Total
		return nil
	}), crossbus.WithFilter(pattern))
	require.NoError(t, err)
	nf, ok := s.NativeFilter()
	require.True(t, ok)
	assert.Equal(t, "cloudEvents_type = 'order.placed'", nf.Expression)
	assert.False(t, nf.Exact)
	mk := func(typ string, total int) *crossbus.Event {
		e := crossbus.NewEvent(typ, "/shop")
		require.NoError(t, crossbus.SetData(&e, map[string]int{"total": total}))
		return &e
	}
	require.NoError(t, b.Publish(ctx, "orders", mk("order.placed", 50), mk("order.cancelled", 500), mk("order.placed", 500)))
	select {
	case total := <-got:
		assert.Equal(t, 500, total)
	case <-ctx.Done():
		t.Fatal("the matching event was not handled")
	}
	select {
	case total := <-got:
		t.Fatalf("handled an event the filter does not match (total %d)", total)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestAutoCreateWithAClientNeedsAnAdminClient(t *testing.T) {
	srv := newServer(t)
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	require.NoError(t, err)
	defer client.Close(context.Background())
	p, err := servicebus.New(context.Background(), servicebus.Options{Client: client, AutoCreate: true})
	require.NoError(t, err)
	defer p.Close(context.Background())
	_, err = p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "orders", Name: "billing"})
	assert.ErrorIs(t, err, driver.ErrInvalidOption)
}

// The autocreate URL parameter turns AutoCreate on; the administration
// client then comes from the connection string (which reaches Service Bus,
// not the test broker's separate management listener).
func TestAutoCreateURLParameter(t *testing.T) {
	srv := newServer(t)
	t.Setenv(servicebus.EnvConnectionString, srv.ConnectionString())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := crossbus.Open(ctx, "azuresb://"+srv.Addr()+"?autocreate=maybe")
	require.ErrorIs(t, err, crossbus.ErrInvalidURL)
	assert.Contains(t, err.Error(), "autocreate")
	bus, err := crossbus.Open(ctx, "azuresb://"+srv.Addr()+"?autocreate=true")
	require.NoError(t, err)
	defer bus.Close(ctx)
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	_, err = bus.Subscribe(sctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }))
	require.Error(t, err, "the subscription is looked up through the management API")
	assert.Contains(t, err.Error(), `read subscription "orders/Subscriptions/billing"`)
}
