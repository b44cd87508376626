package sbtest_test

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/azure/sbtest"
)

// A subscription takes the topic messages one of its rules selects, once
// however many match; without rules it takes nothing.
func TestSubscriptionRulesSelectMessages(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateTopic("orders", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("orders", "eu", sbtest.EntityOptions{Filter: "region = 'eu'"}))
	require.NoError(t, e.srv.CreateSubscription("orders", "all", sbtest.EntityOptions{}))
	rules, err := e.srv.Rules("orders", "all")
	require.NoError(t, err)
	assert.Equal(t, []sbtest.Rule{{Name: sbtest.DefaultRuleName, Filter: sbtest.TrueFilter}}, rules)

	_, err = e.srv.Rules("orders", "missing")
	assert.ErrorIs(t, err, sbtest.ErrNotFound)
	assert.ErrorIs(t, e.srv.CreateSubscription("orders", "bad", sbtest.EntityOptions{Filter: "region ="}), sbtest.ErrInvalidFilter)
	require.NoError(t, e.srv.AddRule("orders", "eu", sbtest.Rule{Name: "big", Filter: "amount > 100"}))
	assert.ErrorIs(t, e.srv.AddRule("orders", "eu", sbtest.Rule{Name: "BIG"}), sbtest.ErrExists)

	msg := func(id string, props map[string]any) *azservicebus.Message {
		return &azservicebus.Message{MessageID: &id, Body: []byte(id), ApplicationProperties: props}
	}
	e.send("orders",
		msg("us-small", map[string]any{"region": "us", "amount": int64(5)}),
		msg("eu-small", map[string]any{"region": "eu", "amount": int64(5)}),
		msg("us-big", map[string]any{"region": "us", "amount": int64(500)}),
		msg("eu-big", map[string]any{"region": "eu", "amount": int64(500)}), // both rules: one copy
		msg("none", nil))

	r, err := e.client.NewReceiverForSubscription("orders", "eu", nil)
	require.NoError(t, err)
	defer r.Close(e.ctx)
	var got []string
	for _, m := range e.receiveN(r, 3) {
		got = append(got, m.MessageID)
		require.NoError(t, r.CompleteMessage(e.ctx, m, nil))
	}
	assert.Equal(t, []string{"eu-small", "us-big", "eu-big"}, got)
	c, err := e.srv.Counts("orders/Subscriptions/eu")
	require.NoError(t, err)
	assert.Zero(t, c.Active, "nothing else was selected")
	c, err = e.srv.Counts("orders/Subscriptions/all")
	require.NoError(t, err)
	assert.Equal(t, 5, c.Active)

	require.NoError(t, e.srv.DeleteRule("orders", "all", sbtest.DefaultRuleName))
	assert.ErrorIs(t, e.srv.DeleteRule("orders", "all", sbtest.DefaultRuleName), sbtest.ErrNotFound)
	e.send("orders", msg("after", map[string]any{"region": "eu"}))
	c, err = e.srv.Counts("orders/Subscriptions/all")
	require.NoError(t, err)
	assert.Equal(t, 5, c.Active, "a subscription without rules takes nothing")
}
