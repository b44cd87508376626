package crossbus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

func chargeCard(context.Context, *crossbus.Event) error { return nil }

type shipment struct{ ID string }

func shipOrder(context.Context, *crossbus.Event, shipment) error { return nil }

func TestTopologyDescribesEveryRoute(t *testing.T) {
	b, _ := memBus(t)
	r := newRouter(t, b)
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(chargeCard),
		crossbus.WithFilter(crossbus.TypeIs("order.placed")), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3}),
		crossbus.WithRateLimit(10, 5), crossbus.WithOrdering(), crossbus.WithConcurrency(4)))
	require.NoError(t, r.Handle("orders", "shipping", crossbus.Typed(shipOrder), crossbus.WithDeadLetterTopic("orders-dead"),
		crossbus.WithCircuitBreaker(crossbus.BreakerPolicy{ConsecutiveFailures: 5})))
	top := r.Topology()
	require.Len(t, top.Routes, 2)
	billing := top.Routes[0]
	assert.Equal(t, "github.com/crossbus/crossbus_test.chargeCard", billing.Handler)
	assert.JSONEq(t, `{"type":["order.placed"]}`, billing.Filter)
	assert.Equal(t, 3, billing.Retry.MaxAttempts)
	assert.True(t, billing.Ordered)
	assert.Equal(t, 4, billing.Concurrency)
	require.NotNil(t, billing.RateLimit)
	assert.Equal(t, 10.0, billing.RateLimit.EventsPerSecond)
	shipping := top.Routes[1]
	assert.Equal(t, "github.com/crossbus/crossbus_test.shipOrder", shipping.Handler)
	assert.Equal(t, "orders-dead", shipping.DeadLetterTopic)
	require.NotNil(t, shipping.Breaker)

	var m, dot bytes.Buffer
	require.NoError(t, top.WriteMermaid(&m))
	assert.Contains(t, m.String(), `t_orders --> s_orders__billing`)
	assert.Contains(t, m.String(), `s_orders__shipping -. dead letters .-> t_orders_dead`)
	require.NoError(t, top.WriteDOT(&dot))
	assert.True(t, strings.HasPrefix(dot.String(), "digraph crossbus {"))
	assert.Contains(t, dot.String(), `t_orders -> s_orders__billing;`)
}

func TestCountersCountOutcomesAndTargetedEventsSkipOtherSubscriptions(t *testing.T) {
	b, _ := memBus(t)
	r := newRouter(t, b)
	var mu sync.Mutex
	seen := map[string][]string{}
	rec := func(name string, fail bool) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			mu.Lock()
			seen[name] = append(seen[name], e.ID())
			mu.Unlock()
			if fail && e.Type() == "bad" {
				return errors.New("boom")
			}
			return nil
		})
	}
	require.NoError(t, r.Handle("things", "first", rec("first", true), quick(2)))
	require.NoError(t, r.Handle("things", "second", rec("second", false)))
	runRouter(t, r)

	good := crossbus.NewEvent("good", "/t")
	bad := crossbus.NewEvent("bad", "/t")
	onlySecond := crossbus.NewEvent("good", "/t")
	onlySecond.SetExtension("targetsubscription", "second")
	require.NoError(t, b.Publish(context.Background(), "things", &good, &bad, &onlySecond))
	require.Eventually(t, func() bool {
		c := r.Counters(context.Background())
		return c[0].Handled == 1 && c[0].DeadLettered == 1 && c[1].Handled == 3
	}, 5*time.Second, 10*time.Millisecond)
	c := r.Counters(context.Background())
	assert.Equal(t, int64(2), c[0].Failed)
	assert.Equal(t, int64(1), c[0].Retried)
	assert.True(t, c[0].Running)
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, seen["first"], onlySecond.ID(), "an event targeted at another subscription is not handled")
	assert.Contains(t, seen["second"], onlySecond.ID())
}

func TestAfterPublishSeesOnlyAcceptedEvents(t *testing.T) {
	var got []string
	b, err := crossbus.Open(context.Background(), "mem://", crossbus.WithAfterPublish(func(_ context.Context, topic string, es []*crossbus.Event) {
		for _, e := range es {
			got = append(got, topic+"/"+e.ID())
		}
	}))
	require.NoError(t, err)
	defer b.Close(context.Background())
	ok := crossbus.NewEvent("t", "/s")
	invalid := crossbus.NewEvent("t", "")
	err = b.Publish(context.Background(), "things", &ok, &invalid)
	require.Error(t, err)
	assert.Equal(t, []string{"things/" + ok.ID()}, got)
	_, err = crossbus.Open(context.Background(), "mem://", crossbus.WithAfterPublish(nil))
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}
