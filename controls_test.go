package crossbus_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/batching"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/sequence"
)

// Closing stops every goroutine the load controls started, even while a
// breaker is open, a limiter waits for tokens, a batch waits to fill and the
// batching publisher has events pending.
func TestControlsLeaveNoGoroutinesBehind(t *testing.T) {
	ctx := testCtx(t)
	before := runtime.NumGoroutine()
	b, err := crossbus.Open(ctx, "mem://")
	require.NoError(t, err)
	clk := clocktest.New(time.Time{})
	fail := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return errDown })
	_, err = b.Subscribe(ctx, "topic", "breaker", fail, crossbus.WithClock(clk), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 9, InitialBackoff: crossbus.NoBackoff, Multiplier: 1}),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 1, OpenFor: time.Hour}))
	require.NoError(t, err)
	_, err = b.Subscribe(ctx, "topic", "limited", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithClock(clk), crossbus.WithRateLimit(1, 1))
	require.NoError(t, err)
	_, err = b.SubscribeBatch(ctx, "topic", "batch", newBatchRecorder(nil), crossbus.WithClock(clk), crossbus.WithBatch(100, time.Hour))
	require.NoError(t, err)
	_, err = b.SubscribeBatch(ctx, "topic", "batch-retry", newBatchRecorder(func(*crossbus.Event) error { return errDown }),
		crossbus.WithClock(clk), crossbus.WithBatch(1, 0), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Hour, MaxBackoff: time.Hour, Multiplier: 1}))
	require.NoError(t, err)
	reseq, err := sequence.Resequence(sequence.ResequenceOptions{})
	require.NoError(t, err)
	_, err = b.Subscribe(ctx, "topic", "reseq", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithMiddleware(reseq), crossbus.WithClock(clk), crossbus.WithPrefetch(1))
	require.NoError(t, err)
	bp, err := batching.NewPublisher(b, batching.Options{Linger: time.Hour})
	require.NoError(t, err)

	require.NoError(t, b.Publish(ctx, "topic", mkEvents(5)...))
	require.NoError(t, b.Publish(ctx, "topic", seqEvent("k", 2)))
	pending := make(chan error, 1)
	go func() { pending <- bp.Publish(ctx, "topic", mkEvents(1)...) }()
	waitUntil(t, "the controls wait", func() bool { return clk.Timers() >= 5 && bp.Pending() == 1 })

	require.NoError(t, bp.Close(ctx))
	require.NoError(t, <-pending)
	require.NoError(t, b.Close(ctx))
	waitUntil(t, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}
