package crossbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

var errDown = errors.New("downstream unavailable")

// transitions records a breaker's state changes.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) record(c crossbus.BreakerStateChange) {
	tr.mu.Lock()
	tr.got = append(tr.got, c.From.String()+"->"+c.To.String())
	tr.mu.Unlock()
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.got...)
}

func TestBreakerPolicyValidation(t *testing.T) {
	for want, p := range map[string]crossbus.BreakerPolicy{
		"needs ConsecutiveFailures or FailureRate": {},
		"ConsecutiveFailures must not be negative": {ConsecutiveFailures: -1},
		"FailureRate must be between 0 and 1":      {FailureRate: 1.5},
		"MinRequests must not be negative":         {FailureRate: 0.5, MinRequests: -1},
		"Window must not be negative":              {FailureRate: 0.5, Window: -time.Second},
		"OpenFor must not be negative":             {ConsecutiveFailures: 1, OpenFor: -time.Second},
		"HalfOpenProbes must not be negative":      {ConsecutiveFailures: 1, HalfOpenProbes: -1},
	} {
		err := p.Validate()
		require.ErrorIs(t, err, crossbus.ErrInvalidOption, want)
		assert.ErrorContains(t, err, want)
		b, _ := memBus(t)
		err = newRouter(t, b).Handle("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
			crossbus.WithCircuitBreaker(p))
		assert.ErrorContains(t, err, want, "checked when the route is added")
	}
}

func TestBreakerStateMachine(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	var tr transitions
	b, err := crossbus.NewTestBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 3, OpenFor: 10 * time.Second, HalfOpenProbes: 2}, clk, tr.record)
	require.NoError(t, err)
	call := func(err error) {
		p, aerr := b.Admit(ctx)
		require.NoError(t, aerr)
		b.Record(p, err)
	}
	call(errDown)
	call(errDown)
	call(nil) // a success resets the run
	call(errDown)
	call(errDown)
	assert.Equal(t, crossbus.BreakerClosed, b.State())
	call(errDown)
	assert.Equal(t, crossbus.BreakerOpen, b.State())

	_, wait, ok := b.AdmitNow()
	assert.False(t, ok)
	assert.Equal(t, 10*time.Second, wait, "a push delivery is told to come back when the breaker may let it through")

	admitted := make(chan crossbus.TestPermit, 1)
	go func() {
		p, _ := b.Admit(ctx)
		admitted <- p
	}()
	require.NoError(t, clk.BlockUntil(ctx, 1))
	clk.Advance(9 * time.Second)
	select {
	case <-admitted:
		t.Fatal("admitted while open")
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(time.Second)
	probe1 := <-admitted
	assert.True(t, probe1.Probe())
	assert.Equal(t, crossbus.BreakerHalfOpen, b.State())
	probe2, _, ok := b.AdmitNow()
	require.True(t, ok)
	_, _, ok = b.AdmitNow()
	assert.False(t, ok, "only HalfOpenProbes probes at once")
	b.Record(probe1, nil)
	assert.Equal(t, crossbus.BreakerHalfOpen, b.State(), "one of two probes succeeded")
	b.Record(probe2, errDown)
	assert.Equal(t, crossbus.BreakerOpen, b.State(), "a failed probe opens again")

	clk.Advance(10 * time.Second)
	probe, _, ok := b.AdmitNow()
	require.True(t, ok)
	b.Record(probe, nil)
	probe, _, ok = b.AdmitNow()
	require.True(t, ok)
	b.Record(probe, nil)
	assert.Equal(t, crossbus.BreakerClosed, b.State())
	budget, err := b.ReceiveBudget(ctx, 8)
	require.NoError(t, err)
	assert.Equal(t, 8, budget, "closed: a worker receives its full prefetch")
	assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed"}, tr.list())
}

func TestBreakerHalfOpenReceiveBudgetIsTheFreeProbes(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	b, err := crossbus.NewTestBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 3}, clk, nil)
	require.NoError(t, err)
	p, _ := b.Admit(ctx)
	b.Record(p, errDown)
	got := make(chan int, 1)
	go func() { n, _ := b.ReceiveBudget(ctx, 8); got <- n }()
	require.NoError(t, clk.BlockUntil(ctx, 1), "no receiving while open")
	clk.Advance(time.Second)
	assert.Equal(t, 3, <-got)
	_, _, _ = b.AdmitNow()
	n, err := b.ReceiveBudget(ctx, 8)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func TestBreakerFailureRateOverAWindow(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	b, err := crossbus.NewTestBreaker(crossbus.BreakerPolicy{FailureRate: 0.5, MinRequests: 4, Window: 10 * time.Second}, clk, nil)
	require.NoError(t, err)
	record := func(ok, failed int) {
		p, err := b.Admit(ctx)
		require.NoError(t, err)
		b.RecordCounts(p, ok, failed)
	}
	record(0, 3)
	assert.Equal(t, crossbus.BreakerClosed, b.State(), "3 outcomes: under MinRequests")
	clk.Advance(11 * time.Second) // those fall out of the window
	record(3, 0)
	record(0, 2)
	assert.Equal(t, crossbus.BreakerClosed, b.State(), "2 of 5 failed: under the rate")
	record(0, 1)
	assert.Equal(t, crossbus.BreakerOpen, b.State(), "3 of 6 failed")
}

func TestBreakerCountsOnlyDownstreamFailures(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	b, err := crossbus.NewTestBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 2}, clk, nil)
	require.NoError(t, err)
	call := func(err error) {
		p, _ := b.Admit(ctx)
		b.Record(p, err)
	}
	call(errDown)
	call(crossbus.Permanent(errors.New("bad event"))) // the downstream answered
	call(errDown)
	call(fmt.Errorf("dup: %w", crossbus.ErrInProgress)) // nothing was called
	assert.Equal(t, crossbus.BreakerClosed, b.State())
	call(errDown)
	assert.Equal(t, crossbus.BreakerOpen, b.State())

	custom, err := crossbus.NewTestBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 1,
		IsFailure: func(err error) bool { return errors.Is(err, errDown) }}, clk, nil)
	require.NoError(t, err)
	p, _ := custom.Admit(ctx)
	custom.Record(p, errors.New("validation failed"))
	assert.Equal(t, crossbus.BreakerClosed, custom.State())
	p, _ = custom.Admit(ctx)
	custom.Record(p, errDown)
	assert.Equal(t, crossbus.BreakerOpen, custom.State())
}

// An outcome of a call admitted before a state change describes the past:
// it neither extends an open period nor closes a half-open breaker.
func TestBreakerIgnoresStaleOutcomes(t *testing.T) {
	ctx := testCtx(t)
	clk := clocktest.New(time.Time{})
	b, err := crossbus.NewTestBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 1, OpenFor: time.Second}, clk, nil)
	require.NoError(t, err)
	slow, _ := b.Admit(ctx)
	p, _ := b.Admit(ctx)
	b.Record(p, errDown)
	require.Equal(t, crossbus.BreakerOpen, b.State())
	clk.Advance(time.Second)
	require.Equal(t, crossbus.BreakerHalfOpen, b.State())
	b.Record(slow, nil)
	assert.Equal(t, crossbus.BreakerHalfOpen, b.State(), "a call from before the opening does not close it")
}

// The required scenario: a failing downstream opens the breaker; while it is
// open no handler runs and no event is nacked, so no retry attempt is spent
// and nothing is lost; once it closes, everything drains, and each event
// took exactly the attempts it needed.
func TestBreakerProtectsTheDownstreamWithoutLosingOrSpendingAttempts(t *testing.T) {
	ctx := testCtx(t)
	reader := sdkmetric.NewManualReader()
	var logs bytes.Buffer
	p := memory.New(memory.Options{AutoCreate: true})
	b, err := crossbus.New(p, crossbus.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		crossbus.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	defer b.Close(context.Background())
	clk := clocktest.New(time.Time{})

	var healthy atomic.Bool
	var calls atomic.Int32
	var mu sync.Mutex
	attemptsOf := map[string]int{} // event id -> the attempt that succeeded
	var tr transitions
	const n = 20
	r := newRouter(t, b)
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		calls.Add(1)
		if !healthy.Load() {
			return errDown
		}
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		mu.Lock()
		attemptsOf[e.ID()] = info.Attempt
		mu.Unlock()
		return nil
	}),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 3, OpenFor: time.Minute, OnStateChange: tr.record}),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: crossbus.NoBackoff, Multiplier: 1}), // immediate redelivery
		crossbus.WithClock(clk), crossbus.WithConcurrency(1), crossbus.WithPrefetch(4)))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "orders", mkEvents(n)...))

	require.NoError(t, clk.BlockUntil(ctx, 1), "the worker waits for the breaker")
	state, ok := r.BreakerState("orders", "billing")
	require.True(t, ok)
	assert.Equal(t, crossbus.BreakerOpen, state)
	assert.Equal(t, int32(3), calls.Load(), "three failures opened it")

	clk.Advance(30 * time.Second) // half the open period: still open
	require.NoError(t, clk.BlockUntil(ctx, 1))
	assert.Equal(t, int32(3), calls.Load(), "no handler started while open")
	st, _ := p.Stats("orders", "billing")
	assert.Equal(t, memory.Stats{Waiting: n - 1, InFlight: 1}, st,
		"nothing lost or dead-lettered: one received event waits with its lease, the rest stay in the provider")

	healthy.Store(true)
	clk.Advance(30 * time.Second) // the open period ends: a probe goes through
	waitUntil(t, "everything drained", func() bool { st, _ := p.Stats("orders", "billing"); return st == memory.Stats{} })
	assert.Equal(t, int32(n+3), calls.Load(), "each event ran once more than it failed")
	mu.Lock()
	retried := 0
	for _, a := range attemptsOf {
		switch a {
		case 1:
		case 2:
			retried++
		default:
			t.Errorf("an event succeeded on attempt %d: attempts were spent while open", a)
		}
	}
	assert.Len(t, attemptsOf, n)
	mu.Unlock()
	assert.Equal(t, 3, retried, "only the three events that failed before the breaker opened were retried, once")
	assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->closed"}, tr.list())
	dead, _ := p.DeadLetters("orders", "billing")
	assert.Empty(t, dead)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, int64(3), sumOf(t, rm, "crossbus.breaker.transitions", ""))
	assert.Contains(t, logs.String(), "circuit breaker open")
	assert.Contains(t, logs.String(), "3 consecutive failures")
	assert.True(t, strings.Contains(logs.String(), "circuit breaker closed"))
}

func TestEndpointNacksWhileTheBreakerIsOpen(t *testing.T) {
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(context.Background(), "push-dlq", "inspect", false))
	clk := clocktest.New(time.Time{})
	var calls atomic.Int32
	ep, err := b.NewEndpoint("push", "web", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		calls.Add(1)
		return errDown
	}), crossbus.WithDeadLetterTopic("push-dlq"), crossbus.WithClock(clk),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 1, OpenFor: time.Minute}))
	require.NoError(t, err)
	deliver := func() (driver.Outcome, time.Duration) {
		e := crossbus.NewEvent("t", "/push")
		d := driver.NewPushDelivery(&e, 1)
		ep.Deliver(context.Background(), d)
		return d.Outcome()
	}
	o, _ := deliver()
	assert.Equal(t, driver.OutcomeNacked, o)
	clk.Advance(20 * time.Second)
	o, delay := deliver()
	assert.Equal(t, driver.OutcomeNacked, o)
	assert.Equal(t, 40*time.Second, delay, "retry after the rest of the open period")
	assert.Equal(t, int32(1), calls.Load(), "the handler did not run while open")
}

// On an ordered route a failed event is retried in place; while the breaker
// is open its retry waits, and the key's later events keep their order.
func TestBreakerOnAnOrderedRouteKeepsKeyOrder(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	var calls atomic.Int32
	var mu sync.Mutex
	var order []string
	var firstAttempt int
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if calls.Add(1) <= 2 {
			return errDown
		}
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		mu.Lock()
		if len(order) == 0 {
			firstAttempt = info.Attempt
		}
		order = append(order, e.Subject())
		mu.Unlock()
		return nil
	}), crossbus.WithOrdering(), crossbus.WithClock(clk),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: crossbus.NoBackoff, Multiplier: 1}),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 2, OpenFor: time.Minute})))
	runRouter(t, r)
	var evs []*crossbus.Event
	for i := 1; i <= 5; i++ {
		e := crossbus.NewEvent("t", "/o")
		crossbus.SetPartitionKey(&e, "k")
		e.SetSubject(fmt.Sprint(i))
		evs = append(evs, &e)
	}
	require.NoError(t, b.Publish(ctx, "topic", evs...))
	require.NoError(t, clk.BlockUntil(ctx, 1), "the in-place retry waits for the breaker")
	assert.Equal(t, int32(2), calls.Load())
	clk.Advance(time.Minute)
	waitUntil(t, "settled", settled(p, "topic", "sub"))
	assert.Equal(t, []string{"1", "2", "3", "4", "5"}, order)
	assert.Equal(t, 3, firstAttempt, "the open period spent no attempt")
}
