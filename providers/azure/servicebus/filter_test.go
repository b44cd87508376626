package servicebus_test

import (
	"errors"
	"testing"

	"github.com/Azure/go-amqp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/eventpattern"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// brokerMessage is what a broker receives for e: the SDK message encoded
// and decoded as AMQP.
func brokerMessage(t *testing.T, e *crossbus.Event) *amqp.Message {
	t.Helper()
	m, err := servicebus.MessageFromEvent(e)
	require.NoError(t, err)
	am := &amqp.Message{Data: [][]byte{m.Body}, ApplicationProperties: m.ApplicationProperties,
		Properties: &amqp.MessageProperties{MessageID: m.MessageID, ContentType: m.ContentType, Subject: m.Subject, GroupID: m.SessionID}}
	b, err := am.MarshalBinary()
	require.NoError(t, err)
	var out amqp.Message
	require.NoError(t, out.UnmarshalBinary(b))
	return &out
}

// The SQL rules SQLFilter writes, evaluated by the test broker's SQL filter
// engine on the messages the provider sends: every event the pattern
// matches passes the rule, and an exact rule passes nothing else.
func TestSQLFilterSelectsWhatThePatternMatches(t *testing.T) {
	patterns := []string{
		`{"type":["order.placed"]}`,
		`{"type":["order.placed","order.paid"]}`,
		`{"source":[{"prefix":"/shop/"}]}`,
		`{"source":[{"suffix":"/eu"}]}`,
		`{"type":[{"wildcard":"order.*d"}]}`,
		`{"type":[{"anything-but":["order.placed"]}]}`,
		`{"type":[{"anything-but":{"prefix":"order."}}]}`,
		`{"subject":[{"anything-but":{"suffix":"_x"}}]}`,
		`{"subject":[{"exists":true}]}`,
		`{"subject":[{"exists":false}]}`,
		`{"subject":["50%_off"]}`,
		`{"subject":[{"prefix":"50%"}]}`,
		`{"type":["order.placed"],"source":[{"prefix":"/shop/"}],"subject":[{"anything-but":["skip"]}]}`,
		`{"$or":[{"type":["order.placed"]},{"source":["/warehouse"]}]}`,
		`{"tenant":["acme"]}`,
		`{"priority":[7]}`,
		`{"type":[{"equals-ignore-case":"ORDER.PLACED"}]}`,
		`{"type":["order.placed"],"data":{"total":[{"numeric":[">",100]}]}}`,
	}
	mk := func(typ, source, subject string, ext map[string]any, total int) *crossbus.Event {
		e := crossbus.NewEvent(typ, source)
		if subject != "" {
			e.SetSubject(subject)
		}
		for k, v := range ext {
			e.SetExtension(k, v)
		}
		require.NoError(t, crossbus.SetData(&e, map[string]int{"total": total}))
		return &e
	}
	events := []*crossbus.Event{
		mk("order.placed", "/shop/eu", "", nil, 500),
		mk("order.placed", "/shop/eu", "skip", nil, 50),
		mk("order.paid", "/shop/us", "50%_off", map[string]any{"tenant": "acme"}, 200),
		mk("order.cancelled", "/warehouse", "a_x", map[string]any{"priority": int32(7)}, 1),
		mk("Order.Placed", "/shop/eu", "50%Xoff", map[string]any{"tenant": "other", "priority": "7"}, 300),
		mk("invoice.sent", "/billing/eu", "", nil, 0),
		mk("order.shipped", "/shop", "x", nil, 0),
	}
	for _, src := range patterns {
		p := crossbus.MustPattern(src)
		sql, exact, err := servicebus.SQLFilter(p)
		if errors.Is(err, eventpattern.ErrNotTranslatable) {
			continue // nothing to push down: the subscription takes everything
		}
		require.NoError(t, err, src)
		f, err := sbtest.CompileSQLFilter(sql)
		require.NoError(t, err, "%s: the rule %q", src, sql)
		for _, e := range events {
			local, native := p.Match(e), f.Match(brokerMessage(t, e))
			if local {
				assert.True(t, native, "%s: rule %q drops %s %s %q, which the pattern matches", src, sql, e.Type(), e.Source(), e.Subject())
			} else if exact {
				assert.False(t, native, "%s: exact rule %q passes %s %s %q, which the pattern does not match", src, sql, e.Type(), e.Source(), e.Subject())
			}
		}
	}
}
