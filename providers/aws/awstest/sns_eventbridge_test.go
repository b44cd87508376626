package awstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/aws/awstest"
)

func allowPolicy(service, queueARN, sourceARN string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":%q},"Action":"sqs:SendMessage",
		"Resource":%q,"Condition":{"ArnEquals":{"aws:SourceArn":%q}}}]}`, service, queueARN, sourceARN)
}

func receiveAll(t *testing.T, c *sqs.Client, url string) []types.Message {
	t.Helper()
	out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	require.NoError(t, err)
	return out.Messages
}

func TestSNSFansOutRawAndEnvelopedToSubscribedQueues(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	cfg := srv.Config()
	sq, sn := sqs.NewFromConfig(cfg), sns.NewFromConfig(cfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("orders")})
	require.NoError(t, err)
	arn := *topic.TopicArn
	assert.Equal(t, "arn:aws:sns:us-east-1:123456789012:orders", arn)

	queues := map[string]string{}
	for _, name := range []string{"raw", "enveloped", "nopolicy"} {
		u := createQueue(t, sq, name, nil)
		queues[name] = u
		qarn := "arn:aws:sqs:us-east-1:123456789012:" + name
		if name != "nopolicy" {
			_, err := sq.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"Policy": allowPolicy("sns.amazonaws.com", qarn, arn)}})
			require.NoError(t, err)
		}
		_, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &arn, Protocol: aws.String("sqs"), Endpoint: &qarn,
			Attributes: map[string]string{"RawMessageDelivery": strconv.FormatBool(name == "raw")}})
		require.NoError(t, err)
	}
	_, err = sn.Publish(ctx, &sns.PublishInput{TopicArn: &arn, Message: aws.String("hello"), Subject: aws.String("greeting"),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"ce-type": {DataType: aws.String("String"), StringValue: aws.String("com.example.hello")},
			"blob":    {DataType: aws.String("Binary"), BinaryValue: []byte{1, 2}},
		}})
	require.NoError(t, err)

	raw := receiveAll(t, sq, queues["raw"])
	require.Len(t, raw, 1)
	assert.Equal(t, "hello", *raw[0].Body)
	assert.Equal(t, "com.example.hello", *raw[0].MessageAttributes["ce-type"].StringValue)
	assert.Equal(t, []byte{1, 2}, raw[0].MessageAttributes["blob"].BinaryValue)

	env := receiveAll(t, sq, queues["enveloped"])
	require.Len(t, env, 1)
	assert.Empty(t, env[0].MessageAttributes, "attributes travel inside the envelope")
	var n struct {
		Type, MessageId, TopicArn, Subject, Message, Timestamp string
		MessageAttributes                                      map[string]struct{ Type, Value string }
	}
	require.NoError(t, json.Unmarshal([]byte(*env[0].Body), &n))
	assert.Equal(t, "Notification", n.Type)
	assert.Equal(t, arn, n.TopicArn)
	assert.Equal(t, "hello", n.Message)
	assert.Equal(t, "greeting", n.Subject)
	assert.Equal(t, "AQI=", n.MessageAttributes["blob"].Value, "binary attributes are base64 in the envelope")
	_, err = time.Parse(time.RFC3339, n.Timestamp)
	require.NoError(t, err)

	assert.Empty(t, receiveAll(t, sq, queues["nopolicy"]), "a queue whose policy does not allow SNS gets nothing")
	require.Len(t, srv.DeliveryErrors(), 1)
	assert.Contains(t, srv.DeliveryErrors()[0], "policy")

	_, err = sn.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(arn + "-missing"), Message: aws.String("x")})
	var nf *snstypes.NotFoundException
	require.ErrorAs(t, err, &nf)

	var entries []snstypes.PublishBatchRequestEntry
	for i := range 11 {
		entries = append(entries, snstypes.PublishBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), Message: aws.String("m")})
	}
	_, err = sn.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: &arn, PublishBatchRequestEntries: entries})
	var tooMany *snstypes.TooManyEntriesInBatchRequestException
	require.ErrorAs(t, err, &tooMany)

	out, err := sn.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: &arn, PublishBatchRequestEntries: []snstypes.PublishBatchRequestEntry{
		{Id: aws.String("ok"), Message: aws.String("fine")}, {Id: aws.String("empty"), Message: aws.String("")}}})
	require.NoError(t, err)
	require.Len(t, out.Successful, 1)
	require.Len(t, out.Failed, 1)
	assert.Equal(t, "empty", *out.Failed[0].Id)

	_, err = sn.Publish(ctx, &sns.PublishInput{TopicArn: &arn, Message: aws.String(strings.Repeat("x", 256*1024+1))})
	var inv *snstypes.InvalidParameterException
	require.ErrorAs(t, err, &inv)
}

func TestSNSRawDeliveryDiscardsMoreThanTenAttributesAndFIFOPassesGroups(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	cfg := srv.Config()
	sq, sn := sqs.NewFromConfig(cfg), sns.NewFromConfig(cfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("t.fifo"), Attributes: map[string]string{"FifoTopic": "true"}})
	require.NoError(t, err)
	u := createQueue(t, sq, "q.fifo", map[string]string{"FifoQueue": "true"})
	qarn := "arn:aws:sqs:us-east-1:123456789012:q.fifo"
	_, err = sq.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"Policy": allowPolicy("sns.amazonaws.com", qarn, *topic.TopicArn)}})
	require.NoError(t, err)
	_, err = sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: &qarn,
		Attributes: map[string]string{"RawMessageDelivery": "true"}})
	require.NoError(t, err)

	_, err = sn.Publish(ctx, &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String("x")})
	require.ErrorContains(t, err, "MessageGroupId")

	attrs := map[string]snstypes.MessageAttributeValue{}
	for i := range 11 {
		attrs[fmt.Sprintf("a%d", i)] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("v")}
	}
	_, err = sn.Publish(ctx, &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String("many"), MessageAttributes: attrs,
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d0")})
	require.NoError(t, err, "SNS itself takes more than 10 attributes")
	for i := 1; i <= 2; i++ {
		_, err = sn.Publish(ctx, &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String("one"),
			MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d1")})
		require.NoError(t, err)
	}
	msgs := receiveAll(t, sq, u)
	require.Len(t, msgs, 1, "the 11-attribute message is discarded and the duplicate deduplicated")
	assert.Equal(t, "one", *msgs[0].Body)
	assert.Equal(t, "g", msgs[0].Attributes["MessageGroupId"])
	require.Len(t, srv.DeliveryErrors(), 1)
	assert.Contains(t, srv.DeliveryErrors()[0], "11 message attributes")
}

func TestEventBridgeRulesRouteMatchingEventsToSQS(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	cfg := srv.Config()
	sq, eb := sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg)
	_, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("shop")})
	require.NoError(t, err)
	_, err = eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("bad"), EventBusName: aws.String("shop"), EventPattern: aws.String(`{"source":"not-a-list"}`)})
	var badPattern *ebtypes.InvalidEventPatternException
	require.ErrorAs(t, err, &badPattern)

	rule, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("big-orders"), EventBusName: aws.String("shop"),
		EventPattern: aws.String(`{"source":["shop"],"detail":{"amount":[{"numeric":[">",100]}]}}`)})
	require.NoError(t, err)
	assert.Equal(t, "arn:aws:events:us-east-1:123456789012:rule/shop/big-orders", *rule.RuleArn)
	u := createQueue(t, sq, "big", nil)
	qarn := "arn:aws:sqs:us-east-1:123456789012:big"
	_, err = sq.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"Policy": allowPolicy("events.amazonaws.com", qarn, *rule.RuleArn)}})
	require.NoError(t, err)
	tg, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("big-orders"), EventBusName: aws.String("shop"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: &qarn}, {Id: aws.String("fifo"), Arn: aws.String(qarn + ".fifo")}}})
	require.NoError(t, err)
	assert.Equal(t, int32(1), tg.FailedEntryCount, "a FIFO target needs SqsParameters.MessageGroupId")

	when := time.Date(2026, 11, 29, 12, 30, 45, 0, time.UTC)
	out, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		{EventBusName: aws.String("shop"), Source: aws.String("shop"), DetailType: aws.String("Order Placed"), Detail: aws.String(`{"amount":250}`), Time: &when, Resources: []string{"arn:aws:s3:::b"}},
		{EventBusName: aws.String("shop"), Source: aws.String("shop"), DetailType: aws.String("Order Placed"), Detail: aws.String(`{"amount":5}`)},
		{EventBusName: aws.String("shop"), Source: aws.String("shop"), DetailType: aws.String("Order Placed"), Detail: aws.String(`[1]`)},
		{EventBusName: aws.String("shop"), Source: aws.String("aws.s3"), DetailType: aws.String("x"), Detail: aws.String(`{}`)},
		{EventBusName: aws.String("shop"), Source: aws.String("shop"), DetailType: aws.String(strings.Repeat("t", 129)), Detail: aws.String(`{}`)},
		{EventBusName: aws.String("nope"), Source: aws.String("shop"), DetailType: aws.String("x"), Detail: aws.String(`{"amount":500}`)},
	}})
	require.NoError(t, err)
	assert.Equal(t, int32(3), out.FailedEntryCount)
	assert.NotEmpty(t, aws.ToString(out.Entries[0].EventId))
	assert.Equal(t, "MalformedDetail", aws.ToString(out.Entries[2].ErrorCode))
	assert.Equal(t, "NotAuthorizedForSourceException", aws.ToString(out.Entries[3].ErrorCode))
	assert.Equal(t, "InvalidArgument", aws.ToString(out.Entries[4].ErrorCode))
	assert.NotEmpty(t, aws.ToString(out.Entries[5].EventId), "EventBridge accepts events for a bus that does not exist, and drops them")

	msgs := receiveAll(t, sq, u)
	require.Len(t, msgs, 1, "only the matching event is delivered")
	var env map[string]any
	require.NoError(t, json.Unmarshal([]byte(*msgs[0].Body), &env))
	assert.Equal(t, "Order Placed", env["detail-type"])
	assert.Equal(t, "2026-11-29T12:30:45Z", env["time"])
	assert.Equal(t, []any{"arn:aws:s3:::b"}, env["resources"])
	assert.Equal(t, map[string]any{"amount": float64(250)}, env["detail"])
	assert.Equal(t, *out.Entries[0].EventId, env["id"])

	var many []ebtypes.PutEventsRequestEntry
	for range 11 {
		many = append(many, ebtypes.PutEventsRequestEntry{Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String("{}")})
	}
	_, err = eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: many})
	require.ErrorContains(t, err, "ValidationException")
	_, err = eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		{Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String(`{"x":"` + strings.Repeat("x", 256*1024) + `"}`)}}})
	require.ErrorContains(t, err, "over the limit")

	_, err = eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("big-orders"), EventBusName: aws.String("shop")})
	require.ErrorContains(t, err, "has targets")
}

func TestFaultsAreInjected(t *testing.T) {
	srv, c := newSQS(t)
	url := createQueue(t, c, "f", nil)
	remove := srv.InjectFault(awstest.Fault{Service: "sqs", Operation: "SendMessage", Code: "KMS.ThrottlingException", Times: 1})
	defer remove()
	_, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")})
	var thr *types.KmsThrottled
	require.ErrorAs(t, err, &thr)
	_, err = c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")})
	require.NoError(t, err, "the fault was spent")
}
