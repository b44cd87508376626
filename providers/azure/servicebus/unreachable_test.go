package servicebus_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// A publish to a namespace nothing answers fails by the caller's deadline
// with an error that names the entity, the endpoint and what the
// connection last reported, and wraps context.DeadlineExceeded; Close then
// returns by its own deadline.
func TestPublishToAnUnreachableNamespaceSaysWhy(t *testing.T) {
	addr := closedPort(t)
	cs := "Endpoint=sb://" + addr + ";SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true"
	p, err := servicebus.New(context.Background(), servicebus.Options{ConnectionString: cs})
	require.NoError(t, err)
	ev := crossbus.NewEvent("order.placed", "/shop")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err = p.Publish(ctx, "orders", []*crossbus.Event{&ev})
	took := time.Since(start)
	require.Error(t, err)
	t.Logf("after %v: %v", took, err)
	assert.Less(t, took, 10*time.Second, "the caller's deadline bounds Publish")
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "wraps context.DeadlineExceeded: %v", err)
	assert.Contains(t, err.Error(), `"orders"`, "names the entity")
	assert.Contains(t, err.Error(), addr, "names the endpoint")
	assert.Contains(t, err.Error(), "connection refused", "says what the connection reported")

	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	defer ccancel()
	start = time.Now()
	err = p.Close(cctx)
	t.Logf("Close after %v: %v", time.Since(start), err)
	assert.Less(t, time.Since(start), 10*time.Second, "Close returns by its deadline")
}

// When the namespace goes away under an open provider, publishes and
// Subscribe say why, and Close still returns by its deadline.
func TestNamespaceThatGoesAwaySaysWhy(t *testing.T) {
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	require.NoError(t, srv.CreateTopic("orders", sbtest.EntityOptions{}))
	require.NoError(t, srv.CreateSubscription("orders", "billing", sbtest.EntityOptions{}))
	p, err := servicebus.New(context.Background(), servicebus.Options{ConnectionString: srv.ConnectionString()})
	require.NoError(t, err)
	ev := crossbus.NewEvent("order.placed", "/shop")
	require.NoError(t, p.Publish(context.Background(), "orders", []*crossbus.Event{&ev}))
	r, err := p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "orders", Name: "billing"})
	require.NoError(t, err)
	defer r.Close(context.Background())
	addr := srv.Addr()
	require.NoError(t, srv.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = p.Publish(ctx, "orders", []*crossbus.Event{&ev})
	require.Error(t, err)
	t.Logf("publish: %v", err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Contains(t, err.Error(), `"orders"`)
	assert.Contains(t, err.Error(), addr)
	assert.Contains(t, err.Error(), "connection refused")

	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_, err = p.Subscribe(sctx, driver.SubscriptionSpec{Topic: "orders", Name: "billing"})
	require.Error(t, err)
	t.Logf("subscribe: %v", err)
	var te *servicebus.TransportError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, addr, te.Endpoint)
	assert.Contains(t, err.Error(), "orders/Subscriptions/billing")

	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	defer ccancel()
	start := time.Now()
	err = p.Close(cctx)
	t.Logf("Close after %v: %v", time.Since(start), err)
	assert.Less(t, time.Since(start), 10*time.Second, "Close returns by its deadline")
}
