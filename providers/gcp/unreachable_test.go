package gcp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
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

// A publish to an endpoint nothing answers fails by the caller's deadline
// with an error that names the topic, the endpoint and what the transport
// last reported, and wraps context.DeadlineExceeded.
func TestPublishToAnUnreachableEndpointSaysWhy(t *testing.T) {
	addr := closedPort(t)
	p, err := gcp.New(context.Background(), gcp.Options{Project: project, Endpoint: addr, Insecure: true})
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
	assert.Contains(t, err.Error(), `"orders"`, "names the topic")
	assert.Contains(t, err.Error(), addr, "names the endpoint")
	assert.Contains(t, err.Error(), "connection refused", "says what the transport reported")

	// Close honours its context although publishes are still being retried.
	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	defer ccancel()
	start = time.Now()
	err = p.Close(cctx)
	took = time.Since(start)
	t.Logf("Close after %v: %v", took, err)
	assert.Less(t, took, 10*time.Second, "Close returns by its deadline")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "Close says it gave up")
	assert.Contains(t, err.Error(), addr)
	waitNoGoroutines(t, 10*time.Second)
}

// Opening a subscription on an endpoint nothing answers says the same.
func TestSubscribeToAnUnreachableEndpointSaysWhy(t *testing.T) {
	addr := closedPort(t)
	p, err := gcp.New(context.Background(), gcp.Options{Project: project, Endpoint: addr, Insecure: true})
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "billing"})
	require.Error(t, err)
	var te *gcp.TransportError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, addr, te.Endpoint)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Unavailable"), "%v", err)
	assert.Contains(t, err.Error(), `"projects/`+project+`/subscriptions/billing"`)
	assert.Contains(t, err.Error(), "connection refused")
}
