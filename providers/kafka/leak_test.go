package kafka_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/kafka"
)

// TestCloseLeavesNoGoroutines uses a bus (publish, subscribe, a failed event
// waiting 10s for its redelivery, a second receiver) and closes it: every
// goroutine it started is gone after.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	admin, err := kafka.New(ctx, testOptions(c))
	require.NoError(t, err)
	require.NoError(t, admin.CreateSubscription(ctx, "events", "billing"))
	require.NoError(t, admin.Close(ctx))
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()

	p, err := kafka.New(ctx, testOptions(c))
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	got := make(chan struct{}, 10)
	_, err = bus.Subscribe(ctx, "events", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		got <- struct{}{}
		return os.ErrInvalid
	}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second, Multiplier: 1}))
	require.NoError(t, err)
	e := crossbus.NewEvent("t", "/s")
	require.NoError(t, bus.Publish(ctx, "events", &e))
	<-got
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "events", Name: "billing"})
	require.NoError(t, err)
	e2 := crossbus.NewEvent("t", "/s")
	require.NoError(t, bus.Publish(ctx, "events", &e2))
	time.Sleep(50 * time.Millisecond)  // the failed event is now nacked with a 10s delay
	require.NoError(t, bus.Close(ctx)) // closes r too
	_ = r
	waitGoroutines(t, before)
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > want {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		_, _ = os.Stderr.Write(buf)
		t.Fatalf("%d goroutines left, want at most %d", n, want)
	}
}
