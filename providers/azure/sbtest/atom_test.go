package sbtest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/azure/sbtest"
)

func adminClient(t *testing.T, srv *sbtest.Server, cs string) *admin.Client {
	t.Helper()
	ac, err := admin.NewClientFromConnectionString(cs, &admin.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}}})
	require.NoError(t, err)
	return ac
}

// The SDK's administration client manages entities and rules through the
// broker's management API.
func TestAdminClientManagesEntitiesAndRules(t *testing.T) {
	e := newEnv(t)
	ac := adminClient(t, e.srv, e.srv.ConnectionString())
	ctx := e.ctx

	got, err := ac.GetTopic(ctx, "orders", nil)
	require.NoError(t, err)
	assert.Nil(t, got, "a missing topic reads as nil")
	_, err = ac.CreateTopic(ctx, "orders", nil)
	require.NoError(t, err)
	_, err = ac.CreateTopic(ctx, "orders", nil)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusConflict, re.StatusCode)
	topic, err := ac.GetTopic(ctx, "orders", nil)
	require.NoError(t, err)
	require.NotNil(t, topic)
	assert.Equal(t, "orders", topic.TopicName)

	_, err = ac.CreateSubscription(ctx, "orders", "eu", &admin.CreateSubscriptionOptions{Properties: &admin.SubscriptionProperties{
		LockDuration: to.Ptr("PT5S"), MaxDeliveryCount: to.Ptr(int32(3)),
		DefaultRule: &admin.RuleProperties{Name: "$Default", Filter: &admin.SQLFilter{Expression: "region = 'eu'"}}}})
	require.NoError(t, err)
	sub, err := ac.GetSubscription(ctx, "orders", "eu", nil)
	require.NoError(t, err)
	require.NotNil(t, sub)
	assert.Equal(t, "PT5S", *sub.LockDuration)
	assert.Equal(t, int32(3), *sub.MaxDeliveryCount)
	missing, err := ac.GetSubscription(ctx, "orders", "nope", nil)
	require.NoError(t, err)
	assert.Nil(t, missing)

	_, err = ac.CreateSubscription(ctx, "orders", "bad", &admin.CreateSubscriptionOptions{Properties: &admin.SubscriptionProperties{
		DefaultRule: &admin.RuleProperties{Name: "$Default", Filter: &admin.SQLFilter{Expression: "region ="}}}})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)

	_, err = ac.CreateRule(ctx, "orders", "eu", &admin.CreateRuleOptions{Name: to.Ptr("big"), Filter: &admin.SQLFilter{Expression: "amount > 100"}})
	require.NoError(t, err)
	var names, exprs []string
	pager := ac.NewListRulesPager("orders", "eu", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		require.NoError(t, err)
		for _, r := range page.Rules {
			names = append(names, r.Name)
			exprs = append(exprs, r.Filter.(*admin.SQLFilter).Expression)
		}
	}
	assert.Equal(t, []string{"$Default", "big"}, names)
	assert.Equal(t, []string{"region = 'eu'", "amount > 100"}, exprs)
	rule, err := ac.GetRule(ctx, "orders", "eu", "big", nil)
	require.NoError(t, err)
	assert.Equal(t, "amount > 100", rule.Filter.(*admin.SQLFilter).Expression)
	_, err = ac.DeleteRule(ctx, "orders", "eu", "big", nil)
	require.NoError(t, err)
	rules, err := e.srv.Rules("orders", "eu")
	require.NoError(t, err)
	assert.Equal(t, []sbtest.Rule{{Name: "$Default", Filter: "region = 'eu'"}}, rules)

	// What the rule selects is what the subscription gets.
	e.send("orders", &azservicebus.Message{Body: []byte("us"), ApplicationProperties: map[string]any{"region": "us"}},
		&azservicebus.Message{Body: []byte("eu"), ApplicationProperties: map[string]any{"region": "eu"}})
	r, err := e.client.NewReceiverForSubscription("orders", "eu", nil)
	require.NoError(t, err)
	defer r.Close(ctx)
	msgs := e.receiveN(r, 1)
	assert.Equal(t, "eu", string(msgs[0].Body))

	_, err = ac.DeleteSubscription(ctx, "orders", "eu", nil)
	require.NoError(t, err)
	_, err = ac.DeleteTopic(ctx, "orders", nil)
	require.NoError(t, err)
	got, err = ac.GetTopic(ctx, "orders", nil)
	require.NoError(t, err)
	assert.Nil(t, got)
}

func TestAdminClientWithAWrongKeyIsRefused(t *testing.T) {
	e := newEnv(t)
	cs := strings.Replace(e.srv.ConnectionString(), "SharedAccessKey=", "SharedAccessKey=wrong", 1)
	ac := adminClient(t, e.srv, cs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ac.CreateTopic(ctx, "orders", nil)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusUnauthorized, re.StatusCode)
}
