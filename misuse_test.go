package crossbus_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// Arguments that cannot work are refused where they are given, with an
// error, instead of a panic or a failure later.
func TestMisuseIsRefusedWhereGiven(t *testing.T) {
	b, _ := memBus(t)
	r := newRouter(t, b)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })

	_, err := crossbus.NewRouter(nil)
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "NewRouter(nil)")
	_, err = crossbus.NewRouter(b, crossbus.WithConcurrency(0))
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "invalid router defaults")
	assert.ErrorIs(t, r.Use(nil), crossbus.ErrInvalidOption, "Use(nil)")
	assert.ErrorIs(t, r.Use(passThrough, nil), crossbus.ErrInvalidOption, "Use(mw, nil)")
	_, err = crossbus.Logging(nil)
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "Logging(nil)")
	assert.ErrorIs(t, r.Handle("orders", "billing", h, crossbus.WithTimeout(0)), crossbus.ErrInvalidOption, "WithTimeout(0)")
	assert.ErrorIs(t, r.Handle("orders", "billing", h, crossbus.WithFilter(crossbus.Any(nil, crossbus.TypeIs("a")))), crossbus.ErrInvalidPattern, "Any(nil, f)")
	assert.ErrorIs(t, r.Handle("orders", "billing", h, crossbus.WithFilter(crossbus.All(nil))), crossbus.ErrInvalidPattern, "All(nil)")
	assert.ErrorIs(t, r.Handle("orders", "billing", h, crossbus.WithFilter(crossbus.All())), crossbus.ErrInvalidPattern, "All()")
	for name, p := range map[string]*crossbus.EventPattern{
		"CIDR":                    crossbus.Field("ip").CIDR("x"),
		"Numeric operator":        crossbus.Field("n").Numeric("!=", 1),
		"Between backwards":       crossbus.Field("n").Between(5, 1),
		"TypeIs()":                crossbus.TypeIs(),
		"TypePrefix()":            crossbus.TypePrefix(),
		"two ranges on a field":   crossbus.All(crossbus.Field("n").Numeric(">", 1), crossbus.Field("n").Numeric("<", 5)).(*crossbus.EventPattern),
		"Equals of a struct":      crossbus.Field("n").Equals(struct{}{}),
		"Field with no path":      crossbus.Field().Exists(true),
		"Wildcard with two stars": crossbus.Field("p").Wildcard("a**"),
	} {
		require.Error(t, p.Err(), name)
		assert.ErrorIs(t, p.Err(), crossbus.ErrInvalidPattern, name)
		assert.False(t, p.Match(&crossbus.Event{}), "%s matches nothing", name)
		assert.ErrorIs(t, r.Handle("orders", "billing", h, crossbus.WithFilter(p)), crossbus.ErrInvalidPattern, name)
	}
	require.NoError(t, r.Handle("orders", "billing", h, crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3})),
		"a policy with only MaxAttempts is complete")
}

// A huge concurrency costs nothing until events arrive: workers start as
// the queue needs them.
func TestLargeConcurrencyStartsWorkersLazily(t *testing.T) {
	ctx := testCtx(t)
	b, _ := memBus(t)
	before := runtime.NumGoroutine()
	handled := make(chan struct{}, 10)
	for _, ordered := range []bool{false, true} {
		opts := []crossbus.RouteOption{crossbus.WithConcurrency(1 << 30)}
		name := "unordered"
		if ordered {
			opts = append(opts, crossbus.WithOrdering())
			name = "ordered"
		}
		_, err := b.Subscribe(ctx, "orders", name, crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			handled <- struct{}{}
			return nil
		}), opts...)
		require.NoError(t, err)
	}
	assert.Less(t, runtime.NumGoroutine()-before, 20, "goroutines started for two routes of concurrency 2^30")
	require.NoError(t, b.Publish(ctx, "orders", mkEvents(3)...))
	for range 6 {
		select {
		case <-handled:
		case <-time.After(5 * time.Second):
			t.Fatal("events not handled")
		}
	}
	assert.Less(t, runtime.NumGoroutine()-before, 40)
}
