package nats_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// TestCloseLeavesNoGoroutines opens an embedded bus, uses it and closes it:
// every goroutine it started (server, client, receivers) is gone after.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "nats+embedded://"+t.TempDir())
	require.NoError(t, err)
	got := make(chan struct{}, 1)
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		got <- struct{}{}
		return nil
	}), crossbus.WithAckDeadline(time.Second))
	require.NoError(t, err)
	e := crossbus.NewEvent("t", "/s")
	require.NoError(t, bus.Publish(ctx, "orders", &e))
	<-got
	require.NoError(t, bus.Close(ctx))
	waitGoroutines(t, before)
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
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
