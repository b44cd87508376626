package awstest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/aws/awstest"
)

func newSQS(t *testing.T) (*awstest.Server, *sqs.Client) {
	t.Helper()
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	return srv, sqs.NewFromConfig(srv.Config())
}

func createQueue(t *testing.T, c *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	require.NoError(t, err)
	return *out.QueueUrl
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestSQSSendReceiveDeleteWithAttributes(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	url := createQueue(t, c, "orders", nil)
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("hello"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"ce-type": {DataType: aws.String("String"), StringValue: aws.String("com.example")},
			"bin":     {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}},
			"n":       {DataType: aws.String("Number.int"), StringValue: aws.String("42")},
		}})
	require.NoError(t, err, "the SDK validates the MD5 of the body")
	require.NotEmpty(t, aws.ToString(sent.MD5OfMessageAttributes))

	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	m := out.Messages[0]
	assert.Equal(t, "hello", *m.Body)
	assert.Equal(t, *sent.MessageId, *m.MessageId)
	assert.Equal(t, "1", m.Attributes["ApproximateReceiveCount"])
	assert.Equal(t, "com.example", *m.MessageAttributes["ce-type"].StringValue)
	assert.Equal(t, []byte{0, 1, 2}, m.MessageAttributes["bin"].BinaryValue)
	assert.Equal(t, *sent.MD5OfMessageAttributes, *m.MD5OfMessageAttributes, "attribute digest is stable")

	// In flight: not received again.
	again, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	require.NoError(t, err)
	assert.Empty(t, again.Messages)

	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
	require.NoError(t, err)
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{"All"}})
	require.NoError(t, err)
	assert.Equal(t, "0", attrs.Attributes["ApproximateNumberOfMessages"])
	assert.Equal(t, "0", attrs.Attributes["ApproximateNumberOfMessagesNotVisible"])
	assert.Equal(t, "arn:aws:sqs:us-east-1:123456789012:orders", attrs.Attributes["QueueArn"])
}

func TestSQSErrorsAreTheOnesAWSReturns(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	url := createQueue(t, c, "q", nil)

	_, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	var dne *types.QueueDoesNotExist
	require.ErrorAs(t, err, &dne)
	assert.Equal(t, "AWS.SimpleQueueService.NonExistentQueue", dne.ErrorCode())

	var entries []types.SendMessageBatchRequestEntry
	for i := range 11 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("x")})
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
	var tooMany *types.TooManyEntriesInBatchRequest
	require.ErrorAs(t, err, &tooMany)

	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("x")}, {Id: aws.String("a"), MessageBody: aws.String("y")}}})
	var dup *types.BatchEntryIdsNotDistinct
	require.ErrorAs(t, err, &dup)

	big := strings.Repeat("x", 1<<20+1)
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &big})
	require.Error(t, err)
	assert.Equal(t, "InvalidParameterValue", apiCode(err))
	assert.Contains(t, err.Error(), "1048576")

	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("bad \x01 char")})
	var bad *types.InvalidMessageContents
	require.ErrorAs(t, err, &bad)

	attrs := map[string]types.MessageAttributeValue{}
	for i := range 11 {
		attrs[fmt.Sprintf("a%d", i)] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("v")}
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageAttributes: attrs})
	require.ErrorContains(t, err, "exceeds the allowed maximum [10]")

	for _, name := range []string{"cloudEvents:id", "AWS.x", ".x", "a..b"} {
		_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"),
			MessageAttributes: map[string]types.MessageAttributeValue{name: {DataType: aws.String("String"), StringValue: aws.String("v")}}})
		require.ErrorContains(t, err, "is invalid", name)
	}

	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 11})
	require.ErrorContains(t, err, "MaxNumberOfMessages")

	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: aws.String("garbage")})
	var rh *types.ReceiptHandleIsInvalid
	require.ErrorAs(t, err, &rh)

	_, err = c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &url})
	require.NoError(t, err)
	_, err = c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &url})
	var purge *types.PurgeQueueInProgress
	require.ErrorAs(t, err, &purge)
}

func TestSQSRejectsUnsignedAndWronglySignedRequests(t *testing.T) {
	srv, _ := newSQS(t)
	cfg := srv.Config()
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIDAWSTEST", "wrong-secret", "")
	_, err := sqs.NewFromConfig(cfg).ListQueues(context.Background(), &sqs.ListQueuesInput{})
	require.Error(t, err)
	assert.Equal(t, "SignatureDoesNotMatch", apiCode(err))

	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIDOTHER", "awstest-secret", "")
	_, err = sqs.NewFromConfig(cfg).ListQueues(context.Background(), &sqs.ListQueuesInput{})
	assert.Equal(t, "InvalidClientTokenId", apiCode(err))

	cfg.Credentials = aws.AnonymousCredentials{}
	_, err = sqs.NewFromConfig(cfg).ListQueues(context.Background(), &sqs.ListQueuesInput{})
	assert.Equal(t, "MissingAuthenticationToken", apiCode(err))
}

func TestSQSVisibilityTimeoutRedeliversWithRisingReceiveCount(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	url := createQueue(t, c, "vis", map[string]string{"VisibilityTimeout": "1"})
	_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")})
	require.NoError(t, err)
	for want := 1; want <= 3; want++ {
		start := time.Now()
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 5,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"}})
		require.NoError(t, err)
		require.Len(t, out.Messages, 1)
		assert.Equal(t, strconv.Itoa(want), out.Messages[0].Attributes["ApproximateReceiveCount"])
		if want > 1 {
			assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "long poll waited for the visibility timeout")
		}
	}
}

func TestSQSChangeVisibilityNacksAndExtends(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	url := createQueue(t, c, "cv", nil)
	_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")})
	require.NoError(t, err)
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	require.NoError(t, err)
	h := out.Messages[0].ReceiptHandle
	_, err = c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: h, VisibilityTimeout: 0})
	require.NoError(t, err)
	out, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1, "visibility 0 returns the message at once")

	_, err = c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: out.Messages[0].ReceiptHandle, VisibilityTimeout: 43201})
	require.ErrorContains(t, err, "43200")

	res, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url,
		Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
			{Id: aws.String("ok"), ReceiptHandle: out.Messages[0].ReceiptHandle, VisibilityTimeout: 60},
			{Id: aws.String("stale"), ReceiptHandle: h, VisibilityTimeout: 60},
		}})
	require.NoError(t, err)
	require.Len(t, res.Successful, 1)
	require.Len(t, res.Failed, 1)
	assert.Equal(t, "stale", *res.Failed[0].Id)
}

func TestSQSRedrivesToDeadLetterQueueAfterMaxReceiveCount(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	createQueue(t, c, "dlq", nil)
	url := createQueue(t, c, "src", map[string]string{"VisibilityTimeout": "0",
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"2"}`})
	_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("poison")})
	require.NoError(t, err)
	for range 2 {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
		require.NoError(t, err)
		require.Len(t, out.Messages, 1)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	require.NoError(t, err)
	assert.Empty(t, out.Messages, "the third receive moves it instead")
	dlqURL, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("dlq")})
	require.NoError(t, err)
	out, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: dlqURL.QueueUrl,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	assert.Equal(t, "poison", *out.Messages[0].Body)
	assert.Equal(t, "arn:aws:sqs:us-east-1:123456789012:src", out.Messages[0].Attributes["DeadLetterQueueSourceArn"])

	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bad"), Attributes: map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:nope","maxReceiveCount":"2"}`}})
	require.ErrorContains(t, err, "Dead letter target does not exist")
}

func TestSQSFIFOKeepsGroupOrderOneInFlightAndDeduplicates(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	url := createQueue(t, c, "f.fifo", map[string]string{"FifoQueue": "true"})
	_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")})
	require.ErrorContains(t, err, "MessageGroupId")
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageGroupId: aws.String("g")})
	require.ErrorContains(t, err, "ContentBasedDeduplication")

	send := func(group, dedup, body string) string {
		out, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body, MessageGroupId: &group, MessageDeduplicationId: &dedup})
		require.NoError(t, err)
		require.NotEmpty(t, aws.ToString(out.SequenceNumber))
		return *out.MessageId
	}
	first := send("a", "1", "a1")
	assert.Equal(t, first, send("a", "1", "a1 again"), "a duplicate within 5 minutes returns the original id")
	send("a", "2", "a2")
	send("b", "3", "b1")

	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 1})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	assert.Equal(t, "a1", *out.Messages[0].Body)
	out2, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
	require.NoError(t, err)
	require.Len(t, out2.Messages, 1, "group a is blocked while a1 is in flight")
	assert.Equal(t, "b1", *out2.Messages[0].Body)
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: out.Messages[0].ReceiptHandle})
	require.NoError(t, err)
	out3, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
	require.NoError(t, err)
	require.Len(t, out3.Messages, 1)
	assert.Equal(t, "a2", *out3.Messages[0].Body)
}

func TestSQSLongPollWakesOnSend(t *testing.T) {
	ctx := context.Background()
	_, c := newSQS(t)
	url := createQueue(t, c, "lp", nil)
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("late")})
	}()
	start := time.Now()
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 10})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	assert.Less(t, time.Since(start), 5*time.Second, "returned when the message arrived, not at the end of the wait")

	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.ReceiveMessage(cctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
