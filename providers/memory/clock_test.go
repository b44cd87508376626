package memory_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

// With a fake clock, a delayed redelivery comes due only when the clock is
// advanced past its delay: a retry with a one-minute backoff runs at once
// after Advance, and never before it.
func TestDelayedRedeliveryFollowsTheProvidersClock(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.New(time.Time{})
	p := memory.New(memory.Options{AutoCreate: true, Clock: clk})
	require.Same(t, clk, p.Clock())
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	defer bus.Close(ctx)
	var attempts atomic.Int32
	done := make(chan struct{})
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		require.Same(t, clk, info.Clock, "the route took the provider's clock")
		if attempts.Add(1) == 1 {
			return errors.New("try again in a minute")
		}
		close(done)
		return nil
	}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Minute, Jitter: crossbus.NoJitter}))
	require.NoError(t, err)
	e := crossbus.NewEvent("com.example.order.placed", "/test")
	require.NoError(t, bus.Publish(ctx, "orders", &e))

	require.Eventually(t, func() bool {
		st, _ := p.Stats("orders", "billing")
		return st.Delayed == 1
	}, 5*time.Second, time.Millisecond, "the failed attempt was nacked with its delay")
	clk.Advance(59 * time.Second)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, int32(1), attempts.Load(), "not redelivered before the delay passed on the clock")
	clk.Advance(time.Second)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("not redelivered after the clock passed the delay")
	}
}

// A lease runs out on the provider's clock: an unsettled delivery comes back
// once the clock passes its ack deadline, not before.
func TestLeaseRunsOutOnTheProvidersClock(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.New(time.Time{})
	p := memory.New(memory.Options{AutoCreate: true, Clock: clk, AckDeadline: 10 * time.Second})
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", false))
	e := crossbus.NewEvent("com.example.order.placed", "/test")
	require.NoError(t, p.Publish(ctx, "orders", []*crossbus.Event{&e}))
	recv, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Name: "billing"})
	require.NoError(t, err)
	buf := make([]driver.Delivery, 1)
	n, err := recv.Receive(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	n, err = recv.Receive(short, buf)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "still leased: got %d", n)
	clk.Advance(10 * time.Second)
	n, err = recv.Receive(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 2, buf[0].Attempt())
}
