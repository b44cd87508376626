package lambda_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	cblambda "github.com/crossbus/crossbus/providers/aws/lambda"
	"github.com/crossbus/crossbus/providers/memory"
)

// world is a bus with a route's dead-letter topic being collected.
type world struct {
	bus *crossbus.Bus
	mu  sync.Mutex
	dl  map[string]crossbus.DeadLetterInfo // event id -> why it was dead-lettered
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	p := memory.New(memory.Options{})
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	require.NoError(t, p.CreateTopic(ctx, "orders-dlq"))
	require.NoError(t, p.CreateSubscription(ctx, "orders-dlq", "dlq", false))
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	w := &world{bus: bus, dl: map[string]crossbus.DeadLetterInfo{}}
	_, err = bus.Subscribe(ctx, "orders-dlq", "dlq", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeadLetterInfoOf(e)
		w.mu.Lock()
		w.dl[e.ID()] = info
		w.mu.Unlock()
		return nil
	}))
	require.NoError(t, err)
	return w
}

func (w *world) deadLetters(t *testing.T, n int) map[string]crossbus.DeadLetterInfo {
	t.Helper()
	require.Eventually(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.dl) >= n }, 5*time.Second, 10*time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]crossbus.DeadLetterInfo{}
	for k, v := range w.dl {
		out[k] = v
	}
	return out
}

func structured(t *testing.T, id string, data any) string {
	t.Helper()
	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	e.SetID(id)
	require.NoError(t, crossbus.SetData(&e, data))
	b, err := json.Marshal(e)
	require.NoError(t, err)
	return string(b)
}

type record struct {
	id, body, group string
	receives        int
	attrs           map[string]string
}

// sqsPayload renders records as Lambda delivers an SQS batch.
func sqsPayload(t *testing.T, queueARN string, recs ...record) events.SQSEvent {
	t.Helper()
	var parts []string
	for _, r := range recs {
		attrs := map[string]any{}
		for k, v := range r.attrs {
			attrs[k] = map[string]any{"stringValue": v, "stringListValues": []string{}, "binaryListValues": []string{}, "dataType": "String"}
		}
		sys := map[string]string{"ApproximateReceiveCount": fmt.Sprint(r.receives), "SentTimestamp": "1764417600000",
			"SenderId": "AROAEXAMPLE:producer", "ApproximateFirstReceiveTimestamp": "1764417600100"}
		if r.group != "" {
			sys["MessageGroupId"] = r.group
			sys["SequenceNumber"] = "18849496460467696128"
		}
		rec, err := json.Marshal(map[string]any{"messageId": r.id, "receiptHandle": "handle-" + r.id, "body": r.body,
			"md5OfBody": "0000", "attributes": sys, "messageAttributes": attrs, "eventSource": "aws:sqs",
			"eventSourceARN": queueARN, "awsRegion": "us-east-1"})
		require.NoError(t, err)
		parts = append(parts, string(rec))
	}
	var ev events.SQSEvent
	require.NoError(t, json.Unmarshal([]byte(`{"Records":[`+strings.Join(parts, ",")+`]}`), &ev))
	return ev
}

func sqsHandler(t *testing.T, ep *crossbus.Endpoint, o cblambda.SQSOptions) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	t.Helper()
	h, err := cblambda.SQS(ep, o)
	require.NoError(t, err)
	return h
}

func failures(resp events.SQSEventResponse) []string {
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func TestSQSBatchReportsOnlyTheFailedItems(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	handled := map[string]int{}
	ep, err := w.bus.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		handled[e.ID()]++
		mu.Unlock()
		switch {
		case strings.HasPrefix(e.ID(), "flaky"):
			return errors.New("payment service timed out")
		case strings.HasPrefix(e.ID(), "bad"):
			return crossbus.Permanent(errors.New("card declined"))
		}
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2}))
	require.NoError(t, err)

	batch := sqsPayload(t, "arn:aws:sqs:us-east-1:123456789012:billing",
		record{id: "m1", body: structured(t, "ok-1", map[string]int{"n": 1}), receives: 1},
		record{id: "m2", body: structured(t, "flaky-2", map[string]int{"n": 2}), receives: 1},
		record{id: "m3", body: structured(t, "ok-3", map[string]int{"n": 3}), receives: 2},
		record{id: "m4", body: structured(t, "bad-4", map[string]int{"n": 4}), receives: 1},
		record{id: "m5", body: structured(t, "flaky-5", map[string]int{"n": 5}), receives: 3}, // the last attempt
		record{id: "m6", body: structured(t, "flaky-6", map[string]int{"n": 6}), receives: 2},
	)
	resp, err := sqsHandler(t, ep, cblambda.SQSOptions{})(context.Background(), batch)
	require.NoError(t, err, "a partial failure never fails the whole batch")
	assert.ElementsMatch(t, []string{"m2", "m6"}, failures(resp), "only the records to retry are reported")

	dl := w.deadLetters(t, 2)
	assert.Contains(t, dl["bad-4"].Reason, "card declined")
	assert.Equal(t, 1, dl["bad-4"].Attempts)
	assert.Contains(t, dl["flaky-5"].Reason, "payment service timed out")
	assert.Equal(t, 3, dl["flaky-5"].Attempts, "ApproximateReceiveCount is the attempt")
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"ok-1", "flaky-2", "ok-3", "bad-4", "flaky-5", "flaky-6"} {
		assert.Equal(t, 1, handled[id], "%s runs once per invocation: retries are Lambda's", id)
	}
}

func TestSQSFIFOBatchStopsAFailedGroupOnly(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	var order []string
	ep, err := w.bus.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		order = append(order, e.ID())
		mu.Unlock()
		if e.ID() == "a2" {
			return errors.New("inventory locked")
		}
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"), crossbus.WithConcurrency(8))
	require.NoError(t, err)
	batch := sqsPayload(t, "arn:aws:sqs:us-east-1:123456789012:billing.fifo",
		record{id: "m1", body: structured(t, "a1", 1), group: "customer-a", receives: 1},
		record{id: "m2", body: structured(t, "b1", 1), group: "customer-b", receives: 1},
		record{id: "m3", body: structured(t, "a2", 2), group: "customer-a", receives: 1},
		record{id: "m4", body: structured(t, "a3", 3), group: "customer-a", receives: 1},
		record{id: "m5", body: structured(t, "b2", 2), group: "customer-b", receives: 1},
	)
	resp, err := sqsHandler(t, ep, cblambda.SQSOptions{})(context.Background(), batch)
	require.NoError(t, err)
	assert.Equal(t, []string{"m3", "m4"}, failures(resp), "the failed record and the later one of its group")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"a1", "b1", "a2", "b2"}, order, "records run one at a time in order; a3 never runs")
}

func TestSQSNackDelayIsAppliedWithChangeMessageVisibility(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	client := sqs.NewFromConfig(srv.Config())
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String("billing")})
	require.NoError(t, err)
	_, err = client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: awssdk.String(structured(t, "e1", 1))})
	require.NoError(t, err)
	// Lambda's poller received it: a real receipt handle.
	got, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, VisibilityTimeout: 0,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"}})
	require.NoError(t, err)
	require.Len(t, got.Messages, 1)
	m := got.Messages[0]
	batch := events.SQSEvent{Records: []events.SQSMessage{{MessageId: *m.MessageId, ReceiptHandle: *m.ReceiptHandle, Body: *m.Body,
		Attributes: m.Attributes, EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:billing", AWSRegion: "us-east-1"}}}

	w := newWorld(t)
	ep, err := w.bus.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return errors.New("try later")
	}), crossbus.WithDeadLetterTopic("orders-dlq"), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second, Multiplier: 1}))
	require.NoError(t, err)
	resp, err := sqsHandler(t, ep, cblambda.SQSOptions{Client: client})(ctx, batch)
	require.NoError(t, err)
	require.Equal(t, []string{*m.MessageId}, failures(resp))

	again, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl})
	require.NoError(t, err)
	assert.Empty(t, again.Messages, "hidden for the retry delay, not visible at once")
	again, err = client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 5})
	require.NoError(t, err)
	assert.Len(t, again.Messages, 1, "visible again after the delay")
}

func TestSQSRecordsInEveryShapeAreDecoded(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	seen := map[string]*crossbus.Event{}
	ep, err := w.bus.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		seen[e.ID()] = e
		mu.Unlock()
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"))
	require.NoError(t, err)

	inner := structured(t, "via-sns", map[string]string{"x": "y"})
	snsEnv, _ := json.Marshal(map[string]any{"Type": "Notification", "MessageId": "sns-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
		"Message": inner, "Timestamp": "2026-11-29T12:00:00.000Z", "SignatureVersion": "1", "Signature": "x", "SigningCertURL": "x", "UnsubscribeURL": "x"})
	s3Event := `{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created","source":"aws.s3",
		"account":"123456789012","time":"2026-11-29T12:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::uploads"],
		"detail":{"version":"0","bucket":{"name":"uploads"},"object":{"key":"cat.jpg","size":5,"etag":"b1946ac92492d2347c6235b4d2611184"},"reason":"PutObject"}}`
	batch := sqsPayload(t, "arn:aws:sqs:us-east-1:123456789012:billing",
		record{id: "m1", body: string(snsEnv), receives: 1},
		record{id: "m2", body: s3Event, receives: 1},
		record{id: "m3", body: "plain text from a legacy producer", receives: 1},
		record{id: "m4", body: `{"n":1}`, receives: 1, attrs: map[string]string{"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/bin",
			"ce-type": "com.example.bin", "content-type": "application/json", "ce-partitionkey": "k1"}},
	)
	resp, err := sqsHandler(t, ep, cblambda.SQSOptions{})(context.Background(), batch)
	require.NoError(t, err)
	assert.Empty(t, resp.BatchItemFailures)
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, seen, "via-sns")
	assert.JSONEq(t, `{"x":"y"}`, string(seen["via-sns"].Data()))
	s3 := seen["17793124-05d4-b198-2fde-7ededc63b103"]
	require.NotNil(t, s3)
	assert.Equal(t, "aws.s3", s3.Source())
	assert.Equal(t, "Object Created", s3.Type())
	assert.Equal(t, "arn:aws:s3:::uploads", s3.Subject())
	raw := seen["m3"]
	require.NotNil(t, raw)
	assert.Equal(t, "aws.sqs.message", raw.Type())
	assert.Equal(t, "arn:aws:sqs:us-east-1:123456789012:billing", raw.Source())
	assert.Equal(t, "plain text from a legacy producer", string(raw.Data()))
	bin := seen["bin-1"]
	require.NotNil(t, bin)
	assert.Equal(t, "k1", crossbus.PartitionKey(bin))
}

func TestEventBridgeHandler(t *testing.T) {
	w := newWorld(t)
	var got []*crossbus.Event
	fail := false
	ep, err := w.bus.NewEndpoint("orders", "thumbnails", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		got = append(got, e)
		if fail {
			return errors.New("resizer busy")
		}
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"))
	require.NoError(t, err)
	h, err := cblambda.EventBridge(ep)
	require.NoError(t, err)
	ctx := context.Background()

	s3 := `{"version":"0","id":"e-1","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
		"time":"2026-11-29T12:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::uploads"],
		"detail":{"bucket":{"name":"uploads"},"object":{"key":"cat.jpg"}}}`
	require.NoError(t, h(ctx, json.RawMessage(s3)))
	require.Len(t, got, 1)
	assert.Equal(t, "Object Created", got[0].Type())
	assert.Equal(t, "123456789012", crossbus.ExtensionString(got[0], "awsaccount"))

	ce := structured(t, "ce-1", map[string]int{"n": 1})
	ours := `{"version":"0","id":"env-9","detail-type":"com.example.order.placed","source":"/shop","account":"123456789012",
		"time":"2026-11-29T12:00:00Z","region":"us-east-1","resources":[],"detail":` + ce + `}`
	require.NoError(t, h(ctx, json.RawMessage(ours)))
	require.Len(t, got, 2)
	assert.Equal(t, "ce-1", got[1].ID(), "the CloudEvent in the detail comes back as published")
	assert.JSONEq(t, `{"n":1}`, string(got[1].Data()))

	fail = true
	err = h(ctx, json.RawMessage(s3))
	require.ErrorIs(t, err, cblambda.ErrRetry, "a retryable failure fails the invocation for Lambda to retry")

	err = h(ctx, json.RawMessage(`{"hello":"world"}`))
	require.ErrorIs(t, err, crossbus.ErrInvalidData)
}

func TestSNSHandler(t *testing.T) {
	w := newWorld(t)
	var got []*crossbus.Event
	ep, err := w.bus.NewEndpoint("orders", "emails", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		got = append(got, e)
		if e.Type() == "aws.sns.notification" {
			return errors.New("cannot handle plain notifications yet")
		}
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"))
	require.NoError(t, err)
	payload := `{"Records":[{"EventVersion":"1.0","EventSubscriptionArn":"arn:aws:sns:us-east-1:123456789012:orders:6b0e71bd",
		"EventSource":"aws:sns","Sns":{"SignatureVersion":"1","Timestamp":"2026-11-29T12:00:00.000Z","Signature":"c2ln",
		"SigningCertUrl":"https://sns.us-east-1.amazonaws.com/cert.pem","MessageId":"95df01b4-ee98-5cb9-9903-4c221d41eb5e",
		"Message":"{\"welcome\":true}","MessageAttributes":{"ce-specversion":{"Type":"String","Value":"1.0"},
		"ce-id":{"Type":"String","Value":"user-7"},"ce-source":{"Type":"String","Value":"/accounts"},
		"ce-type":{"Type":"String","Value":"com.example.user.signedup"},"content-type":{"Type":"String","Value":"application/json"}},
		"Type":"Notification","UnsubscribeUrl":"https://sns.example/unsub","TopicArn":"arn:aws:sns:us-east-1:123456789012:orders","Subject":""}}]}`
	var ev events.SNSEvent
	require.NoError(t, json.Unmarshal([]byte(payload), &ev))
	h, err := cblambda.SNS(ep)
	require.NoError(t, err)
	require.NoError(t, h(context.Background(), ev))
	require.Len(t, got, 1)
	assert.Equal(t, "user-7", got[0].ID())
	assert.Equal(t, "com.example.user.signedup", got[0].Type())
	assert.JSONEq(t, `{"welcome":true}`, string(got[0].Data()))

	ev.Records[0].SNS.MessageAttributes = nil
	ev.Records[0].SNS.Message = "plain"
	err = h(context.Background(), ev)
	require.ErrorIs(t, err, cblambda.ErrRetry)
	assert.Equal(t, "arn:aws:sns:us-east-1:123456789012:orders", got[1].Source())
}

func TestHandlersRefuseANilEndpoint(t *testing.T) {
	sqsH, err := cblambda.SQS(nil, cblambda.SQSOptions{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "SQS(nil endpoint)")
	assert.Nil(t, sqsH)
	ebH, err := cblambda.EventBridge(nil)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "EventBridge(nil endpoint)")
	assert.Nil(t, ebH)
	snsH, err := cblambda.SNS(nil)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "SNS(nil endpoint)")
	assert.Nil(t, snsH)
}

// A record that claims to be a CloudEvent and is not one never reaches the
// handler: the portable layer dead-letters its placeholder to the route's
// dead-letter topic, and the record is settled, not reported failed.
func TestMalformedCloudEventsAreDeadLetteredByTheCore(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	handled := map[string]int{}
	ep, err := w.bus.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		handled[e.ID()]++
		mu.Unlock()
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"))
	require.NoError(t, err)
	ctx := context.Background()

	batch := sqsPayload(t, "arn:aws:sqs:us-east-1:123456789012:billing",
		record{id: "m-ok", body: structured(t, "ok-1", 1), receives: 1},
		record{id: "m-structured", body: `{"specversion":"1.0","id":`, receives: 1,
			attrs: map[string]string{"content-type": "application/cloudevents+json"}},
		record{id: "m-binary", body: `{}`, receives: 2, attrs: map[string]string{"ce-specversion": "1.0", "ce-type": "t"}},
	)
	resp, err := sqsHandler(t, ep, cblambda.SQSOptions{})(ctx, batch)
	require.NoError(t, err)
	assert.Empty(t, failures(resp), "dead-lettered records are settled")

	eb, err := cblambda.EventBridge(ep)
	require.NoError(t, err)
	require.NoError(t, eb(ctx, json.RawMessage(`{"version":"0","id":"env-bad","detail-type":"t","source":"/shop","account":"1",
		"time":"2026-11-29T12:00:00Z","region":"us-east-1","resources":[],"detail":{"specversion":"1.0","id":"x"}}`)))

	sns, err := cblambda.SNS(ep)
	require.NoError(t, err)
	var snsEv events.SNSEvent
	require.NoError(t, json.Unmarshal([]byte(`{"Records":[{"EventSource":"aws:sns","Sns":{"MessageId":"sns-bad",
		"TopicArn":"arn:aws:sns:us-east-1:123456789012:orders","Message":"not json",
		"MessageAttributes":{"content-type":{"Type":"String","Value":"application/cloudevents+json"}}}}]}`), &snsEv))
	require.NoError(t, sns(ctx, snsEv))

	dl := w.deadLetters(t, 4)
	for id, attempts := range map[string]int{"m-structured": 1, "m-binary": 2, "env-bad": 1, "sns-bad": 1} {
		info, ok := dl[id]
		require.True(t, ok, "%s dead-lettered under its message id", id)
		assert.Contains(t, info.Reason, "undecodable message", id)
		assert.Equal(t, attempts, info.Attempts, id)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"ok-1": 1}, handled, "only the valid record reached the handler")
}
