package aws_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/aws"
)

// In Structured mode an SNS route gets a filter policy on the message body
// with what SNS evaluates as crossbus does: the queue receives only events
// of the right type and source; the data condition stays with the route.
// In Binary mode, where events may fall back to structured, no policy is
// set.
func TestSNSRouteGetsAFilterPolicyInStructuredMode(t *testing.T) {
	ctx := context.Background()
	filter := crossbus.MustPattern(`{"type":["order.placed"],"source":[{"prefix":"/shop/"}],"data":{"total":[{"numeric":[">",100]}]}}`)
	for _, mode := range []aws.Mode{aws.Structured, aws.Binary} {
		e := newEnv(t, aws.Options{Publish: aws.SNS, Mode: mode})
		_, err := e.p.ProvisionTopic(ctx, "orders", false)
		require.NoError(t, err)
		out, err := e.p.Provision(ctx, aws.Route{Subscription: "big", Topic: "orders", Filter: filter})
		require.NoError(t, err)
		mk := func(typ, source string, total int) *crossbus.Event {
			ev := crossbus.NewEvent(typ, source)
			require.NoError(t, crossbus.SetData(&ev, map[string]int{"total": total}))
			return &ev
		}
		require.NoError(t, e.bus.Publish(ctx, "orders", mk("order.cancelled", "/shop/eu", 500), mk("order.placed", "/warehouse", 500),
			mk("order.placed", "/shop/eu", 50), mk("order.placed", "/shop/eu", 500)))
		got := e.raw(t, out.QueueURL, 1)
		if mode == aws.Binary {
			assert.Empty(t, out.FilterPolicy)
			assert.Len(t, got, 4, "binary mode: no filter policy")
			continue
		}
		assert.JSONEq(t, `{"type":["order.placed"],"source":[{"prefix":"/shop/"}]}`, out.FilterPolicy)
		var totals []int
		for _, m := range got {
			var ev crossbus.Event
			require.NoError(t, json.Unmarshal([]byte(*m.Body), &ev))
			var d struct{ Total int }
			require.NoError(t, ev.DataAs(&d))
			totals = append(totals, d.Total)
		}
		assert.ElementsMatch(t, []int{50, 500}, totals, "SNS dropped the other type and source; the data condition is the route's")
	}
}
