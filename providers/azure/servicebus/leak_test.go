package servicebus_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// TestCloseLeavesNoGoroutines runs a broker, a bus with an ordered (session)
// and an unordered subscription and a delayed nack in flight, closes them,
// and checks that every goroutine they started has ended.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := sbtest.NewServer(sbtest.Options{})
		require.NoError(t, err)
		defer srv.Close()
		require.NoError(t, srv.CreateTopic("topic", sbtest.EntityOptions{}))
		require.NoError(t, srv.CreateSubscription("topic", "plain", sbtest.EntityOptions{}))
		require.NoError(t, srv.CreateSubscription("topic", "ordered", sbtest.EntityOptions{RequiresSession: true}))
		ctx := context.Background()
		p, err := servicebus.New(ctx, servicebus.Options{ConnectionString: srv.ConnectionString(), SessionIdleTimeout: 50 * time.Millisecond})
		require.NoError(t, err)
		bus, err := crossbus.New(p)
		require.NoError(t, err)
		failed := make(chan struct{}, 10)
		_, err = bus.Subscribe(ctx, "topic", "plain", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			failed <- struct{}{}
			return errors.New("retry me in a minute")
		}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Minute, MaxBackoff: time.Minute, Multiplier: 1}))
		require.NoError(t, err)
		handled := make(chan struct{}, 10)
		_, err = bus.Subscribe(ctx, "topic", "ordered", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			handled <- struct{}{}
			return nil
		}), crossbus.WithOrdering())
		require.NoError(t, err)
		ev := crossbus.NewEvent("com.example.x", "/t")
		crossbus.SetPartitionKey(&ev, "k")
		require.NoError(t, bus.Publish(ctx, "topic", &ev))
		<-failed
		<-handled
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		require.NoError(t, bus.Close(cctx))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, firstStacks(stacks, 10))
	}
}

func firstStacks(all string, n int) string {
	parts := strings.Split(all, "\n\n")
	if len(parts) > n {
		parts = parts[:n]
	}
	return strings.Join(parts, "\n\n")
}
