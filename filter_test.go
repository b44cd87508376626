package crossbus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

func orderEvent(t *testing.T, typ, source string, total int) *crossbus.Event {
	t.Helper()
	e := crossbus.NewEvent(typ, source)
	require.NoError(t, crossbus.SetData(&e, map[string]any{"total": total, "currency": "EUR"}))
	return &e
}

func TestEventPatternsAsRouteFilters(t *testing.T) {
	big := orderEvent(t, "order.placed", "/shop/eu", 250)
	small := orderEvent(t, "order.placed", "/shop/eu", 20)
	other := orderEvent(t, "order.cancelled", "/vip/1", 250)
	for _, tc := range []struct {
		name   string
		f      crossbus.Filter
		big    bool
		small  bool
		other  bool
		pushes bool // translatable to a native filter
	}{
		{"json pattern", crossbus.MustPattern(`{"type":["order.placed"],"data":{"total":[{"numeric":[">",100]}]}}`), true, false, false, true},
		{"type is", crossbus.TypeIs("order.placed"), true, true, false, true},
		{"source prefixes", crossbus.SourcePrefix("/vip/", "/partner/"), false, false, true, true},
		{"field builder", crossbus.Field("data", "currency").Equals("EUR"), true, true, true, true},
		{"all of patterns", crossbus.All(crossbus.TypeIs("order.placed"), crossbus.Field("data", "total").Between(100, 300)), true, false, false, true},
		{"any of patterns", crossbus.Any(crossbus.TypeIs("order.cancelled"), crossbus.Field("data", "total").Numeric("<", 50)), false, true, true, true},
		{"func filter", crossbus.FilterFunc(func(e *crossbus.Event) bool { return e.Source() == "/vip/1" }), false, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.big, tc.f.Match(big), "big order")
			assert.Equal(t, tc.small, tc.f.Match(small), "small order")
			assert.Equal(t, tc.other, tc.f.Match(other), "cancelled vip order")
			ep, isPattern := tc.f.(*crossbus.EventPattern)
			assert.Equal(t, tc.pushes, isPattern && ep.Err() == nil, "an event pattern providers can push down")
		})
	}
}

func TestCompilePatternErrorsNamePathAndRule(t *testing.T) {
	_, err := crossbus.CompilePattern(`{"data":{"amount":[{"numeric":[">"]}]}}`)
	require.ErrorIs(t, err, crossbus.ErrInvalidPattern)
	assert.Contains(t, err.Error(), "data.amount")
	assert.Contains(t, err.Error(), "numeric")
	_, err = crossbus.CompilePattern(`not json`)
	assert.ErrorIs(t, err, crossbus.ErrInvalidPattern)
	assert.Panics(t, func() { crossbus.MustPattern(`{}`) })
}
