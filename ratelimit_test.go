package crossbus_test

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

func TestRateLimiterValidatesArguments(t *testing.T) {
	for name, c := range map[string]struct {
		rate  float64
		burst int
		want  string
	}{
		"zero rate":     {0, 1, "eventsPerSecond must be a finite number > 0, got 0"},
		"negative rate": {-5, 1, "got -5"},
		"NaN rate":      {math.NaN(), 1, "got NaN"},
		"infinite rate": {math.Inf(1), 1, "got +Inf"},
		"zero burst":    {10, 0, "burst must be at least 1, got 0"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := crossbus.NewTestRateLimiter(c.rate, c.burst, nil)
			require.ErrorIs(t, err, crossbus.ErrInvalidOption)
			assert.ErrorContains(t, err, c.want)
			b, _ := memBus(t)
			err = newRouter(t, b).Handle("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
				crossbus.WithRateLimit(c.rate, c.burst))
			assert.ErrorContains(t, err, c.want, "the route option is checked when the route is added")
		})
	}
	b, _ := memBus(t)
	err := newRouter(t, b).Handle("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithRateLimiter(nil))
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestRateLimiterTokensAndRefunds(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	l, err := crossbus.NewTestRateLimiter(10, 5, clk) // one token per 100ms, up to 5
	require.NoError(t, err)
	assert.Equal(t, 5, l.Available(), "a new bucket starts full")

	r, err := l.Reserve(ctx, 3)
	require.NoError(t, err)
	assert.Equal(t, 3, r.Tokens())
	assert.Equal(t, 2, l.Available())
	r.Finish(1) // received one event: two tokens come back
	assert.Equal(t, 4, l.Available())

	r, err = l.Reserve(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, 4, r.Tokens(), "a reservation takes what is there, up to max")
	clk.Advance(time.Second)
	assert.Equal(t, 1, l.Available(), "reserved tokens count against the burst")
	r.Finish(4)
	assert.Equal(t, 5, l.Available(), "the bucket kept filling while the reservation was open")
	clk.Advance(time.Hour)
	assert.Equal(t, 5, l.Available(), "never more than the burst")

	r, _ = l.Reserve(ctx, 5)
	r.Finish(5)
	assert.Equal(t, 0, l.Available())
	got := make(chan int, 1)
	go func() {
		r, err := l.Reserve(ctx, 3)
		if err == nil {
			r.Finish(r.Tokens())
		}
		got <- r.Tokens()
	}()
	require.NoError(t, clk.BlockUntil(ctx, 1), "the reservation waits for a token")
	clk.Advance(99 * time.Millisecond)
	assert.Equal(t, 1, clk.Timers(), "not yet")
	clk.Advance(time.Millisecond)
	assert.Equal(t, 1, <-got, "one token after 100ms: at least one, no more than there is")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.Reserve(cancelled, 1)
	assert.ErrorIs(t, err, context.Canceled)
}

// With the whole burst reserved, a waiting reservation gets tokens when the
// reservation finishes, not by waiting for time to pass.
func TestRateLimiterOutstandingReservationsCapTheBurst(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	l, err := crossbus.NewTestRateLimiter(1000, 1, clk)
	require.NoError(t, err)
	held, err := l.Reserve(ctx, 1)
	require.NoError(t, err)
	got := make(chan int, 1)
	go func() {
		r, _ := l.Reserve(ctx, 1)
		got <- r.Tokens()
	}()
	clk.Advance(time.Hour)
	select {
	case <-got:
		t.Fatal("a second token appeared while the only one was reserved")
	case <-time.After(20 * time.Millisecond):
	}
	held.Finish(0) // unused: it goes back
	assert.Equal(t, 1, <-got)
}

// The route takes events from the provider only as fast as the rate allows:
// the rest stay in the provider (flow control), not leased to the consumer.
func TestRateLimitIsFlowControlOnTheRoute(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	var handled atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		handled.Add(1)
		return nil
	}), crossbus.WithRateLimit(10, 2), crossbus.WithClock(clk), crossbus.WithConcurrency(2), crossbus.WithPrefetch(4)))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(10)...))

	waitUntil(t, "the burst handled", func() bool { return handled.Load() == 2 })
	require.NoError(t, clk.BlockUntil(ctx, 1), "the receiving worker waits for tokens")
	assert.Equal(t, int32(2), handled.Load())
	st, _ := p.Stats("topic", "sub")
	assert.Equal(t, memory.Stats{Waiting: 8}, st, "events not yet allowed stay in the provider")

	for i := int32(1); i <= 8; i++ {
		clk.Advance(100 * time.Millisecond) // one token
		waitUntil(t, "one more event", func() bool { return handled.Load() == 2+i })
		if i < 8 {
			require.NoError(t, clk.BlockUntil(ctx, 1))
			assert.Equal(t, 2+i, handled.Load(), "exactly one event per token")
		}
	}
	waitUntil(t, "all settled", func() bool { st, _ := p.Stats("topic", "sub"); return st == memory.Stats{} })
}

func TestRateLimitRefundsTokensReceiveDidNotUse(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	var handled atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		handled.Add(1)
		return nil
	}), crossbus.WithRateLimit(1, 8), crossbus.WithClock(clk), crossbus.WithConcurrency(1), crossbus.WithPrefetch(8)))
	runRouter(t, r)

	// The worker reserved 8 tokens and received 3: 5 come back.
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(3)...))
	waitUntil(t, "3 handled", func() bool { return handled.Load() == 3 })
	require.NoError(t, b.Publish(ctx, "topic", mkEvents(5)...))
	waitUntil(t, "5 more handled on refunded tokens, without time passing", func() bool { return handled.Load() == 8 })

	require.NoError(t, b.Publish(ctx, "topic", mkEvents(1)...))
	require.NoError(t, clk.BlockUntil(ctx, 1), "the bucket is empty: the worker waits")
	assert.Equal(t, int32(8), handled.Load())
	st, _ := p.Stats("topic", "sub")
	assert.Equal(t, 1, st.Waiting)
	clk.Advance(time.Second)
	waitUntil(t, "the 9th after a second", func() bool { return handled.Load() == 9 })
}

// One limiter shared by two routes bounds their sum.
func TestSharedRateLimiterAcrossRoutes(t *testing.T) {
	ctx := testCtx(t)
	b, _ := memBus(t)
	clk := clocktest.New(time.Time{})
	l, err := crossbus.NewTestRateLimiter(1, 3, clk)
	require.NoError(t, err)
	var handled atomic.Int32
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { handled.Add(1); return nil })
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic-a", "sub", h, crossbus.WithRateLimiter(l), crossbus.WithConcurrency(1)))
	require.NoError(t, r.Handle("topic-b", "sub", h, crossbus.WithRateLimiter(l), crossbus.WithConcurrency(1)))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "topic-a", mkEvents(5)...))
	require.NoError(t, b.Publish(ctx, "topic-b", mkEvents(5)...))
	waitUntil(t, "the shared burst", func() bool { return handled.Load() == 3 })
	require.NoError(t, clk.BlockUntil(ctx, 2))
	assert.Equal(t, int32(3), handled.Load(), "3 tokens for both routes together")
}

func TestEndpointWaitsForATokenAndNacksWhenTheRequestEnds(t *testing.T) {
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(context.Background(), "push-dlq", "inspect", false))
	clk := clocktest.New(time.Time{})
	ep, err := b.NewEndpoint("push", "web", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithDeadLetterTopic("push-dlq"), crossbus.WithRateLimit(1, 1), crossbus.WithClock(clk))
	require.NoError(t, err)
	deliver := func(ctx context.Context) driver.Outcome {
		e := crossbus.NewEvent("t", "/push")
		d := driver.NewPushDelivery(&e, 1)
		ep.Deliver(ctx, d)
		o, _ := d.Outcome()
		return o
	}
	assert.Equal(t, driver.OutcomeAcked, deliver(context.Background()), "the burst")
	short, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Equal(t, driver.OutcomeNacked, deliver(short), "no token before the request ended")
	got := make(chan driver.Outcome, 1)
	go func() { got <- deliver(context.Background()) }()
	require.NoError(t, clk.BlockUntil(testCtx(t), 1))
	clk.Advance(time.Second)
	assert.Equal(t, driver.OutcomeAcked, <-got)
}
