package crossbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

// Every error message names the library once, and an event's id once.
func TestErrorTextNamesTheLibraryOnce(t *testing.T) {
	ctx := context.Background()
	closed, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	require.NoError(t, err)
	require.NoError(t, closed.Close(ctx))
	b, _ := memBus(t)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })

	noSource := crossbus.NewEvent("com.example.x", "")
	big := crossbus.NewEvent("com.example.big", "/t")
	require.NoError(t, crossbus.SetData(&big, strings.Repeat("x", 2<<20)))
	_, routerErr := crossbus.NewRouter(nil)
	r := newRouter(t, b)

	cases := map[string]error{
		"publish on a closed bus":     closed.Publish(ctx, "orders", mkEvents(1)...),
		"subscribe on a closed bus":   func() error { _, err := closed.Subscribe(ctx, "orders", "billing", h); return err }(),
		"open a malformed URL":        func() error { _, err := crossbus.Open(ctx, "mem://host/path"); return err }(),
		"open an unknown scheme":      func() error { _, err := crossbus.Open(ctx, "nope://x"); return err }(),
		"open without a scheme":       func() error { _, err := crossbus.Open(ctx, "orders"); return err }(),
		"invalid event in a batch":    b.Publish(ctx, "orders", &noSource),
		"oversized event":             b.Publish(ctx, "orders", &big),
		"bad topic name":              b.Publish(ctx, "a b", mkEvents(1)...),
		"bad route name":              r.Handle("orders", "x", h),
		"bad route option":            r.Handle("orders", "billing", h, crossbus.WithConcurrency(0)),
		"nil middleware":              r.Use(nil),
		"router without a bus":        routerErr,
		"transactional needs inbox":   r.Handle("orders", "billing", h, crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{Transactional: true})),
		"invalid pattern":             func() error { _, err := crossbus.CompilePattern(`{"type": 1}`); return err }(),
		"invalid builder pattern":     r.Handle("orders", "billing", h, crossbus.WithFilter(crossbus.Field("ip").CIDR("x"))),
		"nil filter in a combination": r.Handle("orders", "billing", h, crossbus.WithFilter(crossbus.Any(nil, crossbus.TypeIs("a")))),
	}
	for name, err := range cases {
		t.Run(name, func(t *testing.T) {
			require.Error(t, err)
			msg := err.Error()
			assert.Equal(t, 1, strings.Count(msg, "crossbus:"), "library named once: %s", msg)
			assert.True(t, strings.HasPrefix(msg, "crossbus: "), "starts with the library: %s", msg)
			for _, word := range strings.Fields(msg) {
				w := strings.TrimRight(word, ":")
				assert.NotContains(t, msg, w+": "+w+":", "no repeated prefix: %s", msg)
			}
		})
	}

	var pe *crossbus.PublishError
	require.ErrorAs(t, cases["invalid event in a batch"], &pe)
	assert.Equal(t, 1, strings.Count(pe.Error(), noSource.ID()), "the event id once: %s", pe.Error())
	assert.ErrorIs(t, cases["invalid event in a batch"], crossbus.ErrInvalidEvent)
	assert.ErrorIs(t, cases["oversized event"], crossbus.ErrTooLarge)
	assert.Equal(t, 1, strings.Count(cases["oversized event"].Error(), big.ID()))
	assert.ErrorIs(t, cases["publish on a closed bus"], crossbus.ErrClosed)
	assert.ErrorIs(t, cases["invalid builder pattern"], crossbus.ErrInvalidPattern)
	assert.ErrorIs(t, cases["nil filter in a combination"], crossbus.ErrInvalidPattern)
	assert.ErrorIs(t, cases["nil middleware"], crossbus.ErrInvalidOption)
	assert.ErrorIs(t, cases["router without a bus"], crossbus.ErrInvalidOption)
	assert.True(t, errors.Is(cases["bad route name"], crossbus.ErrInvalidName))
}
