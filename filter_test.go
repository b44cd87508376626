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
			_, _, err := crossbus.EventBridgePattern(tc.f)
			if tc.pushes {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, crossbus.ErrNotTranslatable)
			}
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

func TestPushDownTranslators(t *testing.T) {
	f := crossbus.All(crossbus.TypeIs("order.placed"), crossbus.SourcePrefix("/shop/"))
	eb, exact, err := crossbus.EventBridgePattern(f)
	require.NoError(t, err)
	assert.True(t, exact)
	assert.Contains(t, string(eb), "detail-type")
	ps, exact, err := crossbus.PubSubFilter(f)
	require.NoError(t, err)
	assert.True(t, exact)
	assert.Contains(t, ps, `attributes.ce-type = "order.placed"`)
	assert.Contains(t, ps, `hasPrefix(attributes.ce-source, "/shop/")`)
	sql, exact, err := crossbus.ServiceBusFilter(f)
	require.NoError(t, err)
	assert.True(t, exact)
	assert.Contains(t, sql, "cloudEvents_type = 'order.placed'")
	_, exact, err = crossbus.PubSubFilter(crossbus.Field("data", "total").Numeric(">", 5))
	if err == nil {
		assert.False(t, exact, "data is not in attributes: superset at best")
	} else {
		assert.ErrorIs(t, err, crossbus.ErrNotTranslatable)
	}
}
