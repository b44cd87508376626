package awstest_test

import (
	"context"
	"errors"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/aws/awstest"
)

// snsFilterEnv is a topic with one raw-delivery queue per filter policy.
type snsFilterEnv struct {
	t   *testing.T
	sq  *sqs.Client
	sn  *sns.Client
	arn string
}

func newSNSFilterEnv(t *testing.T) *snsFilterEnv {
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	cfg := srv.Config()
	e := &snsFilterEnv{t: t, sq: sqs.NewFromConfig(cfg), sn: sns.NewFromConfig(cfg)}
	topic, err := e.sn.CreateTopic(context.Background(), &sns.CreateTopicInput{Name: aws.String("orders")})
	require.NoError(t, err)
	e.arn = *topic.TopicArn
	return e
}

// subscribe makes queue name and subscribes it with attrs; it returns the
// queue URL, or the Subscribe error.
func (e *snsFilterEnv) subscribe(name string, attrs map[string]string) (string, error) {
	ctx := context.Background()
	u := createQueue(e.t, e.sq, name, nil)
	qarn := "arn:aws:sqs:us-east-1:123456789012:" + name
	_, err := e.sq.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"Policy": allowPolicy("sns.amazonaws.com", qarn, e.arn)}})
	require.NoError(e.t, err)
	a := map[string]string{"RawMessageDelivery": "true"}
	for k, v := range attrs {
		a[k] = v
	}
	_, err = e.sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &e.arn, Protocol: aws.String("sqs"), Endpoint: &qarn, Attributes: a})
	return u, err
}

func (e *snsFilterEnv) publish(body string, attrs map[string]snstypes.MessageAttributeValue) {
	_, err := e.sn.Publish(context.Background(), &sns.PublishInput{TopicArn: &e.arn, Message: &body, MessageAttributes: attrs})
	require.NoError(e.t, err)
}

func (e *snsFilterEnv) bodies(url string) []string {
	var out []string
	for _, m := range receiveAll(e.t, e.sq, url) {
		out = append(out, *m.Body)
	}
	sort.Strings(out)
	return out
}

func str(v string) snstypes.MessageAttributeValue {
	return snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: &v}
}

func num(v string) snstypes.MessageAttributeValue {
	return snstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: &v}
}

func TestSNSFilterPolicyOnMessageAttributes(t *testing.T) {
	e := newSNSFilterEnv(t)
	placed, err := e.subscribe("placed", map[string]string{"FilterPolicy": `{"event":["order_placed"],"price":[{"numeric":[">=",100]}]}`})
	require.NoError(t, err)
	notCancelled, err := e.subscribe("notcancelled", map[string]string{"FilterPolicy": `{"event":[{"anything-but":{"prefix":"order_cancel"}}],"tags":["vip"]}`})
	require.NoError(t, err)
	noStore, err := e.subscribe("nostore", map[string]string{"FilterPolicy": `{"store":[{"exists":false}],"event":[{"prefix":"order_"}]}`})
	require.NoError(t, err)

	e.publish("a", map[string]snstypes.MessageAttributeValue{"event": str("order_placed"), "price": num("150.5"),
		"tags": {DataType: aws.String("String.Array"), StringValue: aws.String(`["new","vip"]`)}})
	e.publish("b", map[string]snstypes.MessageAttributeValue{"event": str("order_placed"), "price": num("99"), "store": str("x")})
	e.publish("c", map[string]snstypes.MessageAttributeValue{"event": str("order_cancelled"), "price": num("500"),
		"tags": {DataType: aws.String("String.Array"), StringValue: aws.String(`["vip"]`)}})
	e.publish("d", nil)

	assert.Equal(t, []string{"a"}, e.bodies(placed))
	assert.Equal(t, []string{"a"}, e.bodies(notCancelled))
	assert.Equal(t, []string{"a", "c"}, e.bodies(noStore))
}

func TestSNSFilterPolicyOnTheMessageBody(t *testing.T) {
	e := newSNSFilterEnv(t)
	body := map[string]string{"FilterPolicyScope": "MessageBody"}
	with := func(policy string) map[string]string {
		m := map[string]string{"FilterPolicy": policy}
		for k, v := range body {
			m[k] = v
		}
		return m
	}
	typed, err := e.subscribe("typed", with(`{"type":["order.placed"],"source":[{"prefix":"/shop/"}]}`))
	require.NoError(t, err)
	nested, err := e.subscribe("nested", with(`{"data":{"total":[{"numeric":[">",100]}]},"$or":[{"subject":[{"suffix":"/eu"}]},{"subject":[{"equals-ignore-case":"VIP"}]}]}`))
	require.NoError(t, err)

	e.publish(`{"type":"order.placed","source":"/shop/eu","subject":"orders/eu","data":{"total":500}}`, nil)
	e.publish(`{"type":"order.placed","source":"/warehouse","subject":"vip","data":{"total":101}}`, nil)
	e.publish(`{"type":"order.paid","source":"/shop/us","subject":"orders/us","data":{"total":1000}}`, nil)
	e.publish(`not json`, nil)

	assert.Equal(t, []string{`{"type":"order.placed","source":"/shop/eu","subject":"orders/eu","data":{"total":500}}`}, e.bodies(typed))
	assert.Equal(t, []string{
		`{"type":"order.placed","source":"/shop/eu","subject":"orders/eu","data":{"total":500}}`,
		`{"type":"order.placed","source":"/warehouse","subject":"vip","data":{"total":101}}`}, e.bodies(nested))
}

func TestSNSFilterPoliciesSNSRefusesAreRefused(t *testing.T) {
	e := newSNSFilterEnv(t)
	for i, attrs := range []map[string]string{
		{"FilterPolicy": `not json`},
		{"FilterPolicy": `["a"]`},
		{"FilterPolicy": `{"a":[]}`},
		{"FilterPolicy": `{"a":[{"regex":"x"}]}`},
		{"FilterPolicy": `{"a":{"b":["x"]}}`}, // nested needs the body scope
		{"FilterPolicy": `{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}`},
		{"FilterPolicy": `{"a":["1","2","3","4","5","6","7","8","9","10","11","12","13"],"b":["1","2","3","4","5","6","7","8","9","10","11","12","13"]}`},
		{"FilterPolicy": `{"a":["x"]}`, "FilterPolicyScope": "Everything"},
	} {
		_, err := e.subscribe("q"+string(rune('a'+i)), attrs)
		var ip *snstypes.InvalidParameterException
		assert.True(t, errors.As(err, &ip), "%v: %v", attrs, err)
	}
	// SetSubscriptionAttributes checks the policy against the scope it would have.
	ctx := context.Background()
	_, err := e.subscribe("later", nil)
	require.NoError(t, err)
	subs, err := e.sn.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &e.arn})
	require.NoError(t, err)
	var arn *string
	for _, s := range subs.Subscriptions {
		if aws.ToString(s.Endpoint) == "arn:aws:sqs:us-east-1:123456789012:later" {
			arn = s.SubscriptionArn
		}
	}
	require.NotNil(t, arn)
	_, err = e.sn.SetSubscriptionAttributes(ctx, &sns.SetSubscriptionAttributesInput{SubscriptionArn: arn,
		AttributeName: aws.String("FilterPolicy"), AttributeValue: aws.String(`{"a":{"b":["x"]}}`)})
	require.Error(t, err, "nested keys need the MessageBody scope")
	_, err = e.sn.SetSubscriptionAttributes(ctx, &sns.SetSubscriptionAttributesInput{SubscriptionArn: arn,
		AttributeName: aws.String("FilterPolicyScope"), AttributeValue: aws.String("MessageBody")})
	require.NoError(t, err)
	_, err = e.sn.SetSubscriptionAttributes(ctx, &sns.SetSubscriptionAttributesInput{SubscriptionArn: arn,
		AttributeName: aws.String("FilterPolicy"), AttributeValue: aws.String(`{"a":{"b":["x"]}}`)})
	require.NoError(t, err)
}
