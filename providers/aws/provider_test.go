package aws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
)

type env struct {
	srv *awstest.Server
	sqs *sqs.Client
	p   *aws.Provider
	bus *crossbus.Bus
}

func newEnv(t *testing.T, o aws.Options) *env {
	t.Helper()
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	cfg := srv.Config()
	o.Config = &cfg
	if o.Target == "" {
		o.Target = "arn:aws:sns:us-east-1:123456789012:any"
	}
	p, err := aws.New(context.Background(), o)
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return &env{srv: srv, sqs: sqs.NewFromConfig(cfg), p: p, bus: bus}
}

// raw receives messages from a queue with the SDK, bypassing crossbus.
func (e *env) raw(t *testing.T, url string, wait int32) []sqstypes.Message {
	t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"}})
	require.NoError(t, err)
	return out.Messages
}

func TestEventBridgeMapsCloudEventsOntoTheEnvelope(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, aws.Options{Publish: aws.EventBridge})
	_, err := e.p.ProvisionTopic(ctx, "shop", false)
	require.NoError(t, err)
	big, err := e.p.Provision(ctx, aws.Route{Subscription: "big-orders", Topic: "shop",
		Filter: crossbus.All(crossbus.TypeIs("com.example.order.placed"), crossbus.Field("data", "amount").Numeric(">", 100))})
	require.NoError(t, err)
	all, err := e.p.Provision(ctx, aws.Route{Subscription: "s3-resources", Topic: "shop",
		Pattern: `{"source":["https://example.com/shop"],"detail-type":["com.example.order.placed"],"resources":["arn:aws:s3:::receipts/42"]}`})
	require.NoError(t, err)

	order := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	order.SetSubject("arn:aws:s3:::receipts/42")
	order.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&order, map[string]any{"amount": 250}))
	small := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	require.NoError(t, crossbus.SetData(&small, map[string]any{"amount": 5}))
	require.NoError(t, e.bus.Publish(ctx, "shop", &order, &small))

	got := e.raw(t, big.QueueURL, 1)
	require.Len(t, got, 1, "the rule translated from the route's filter matched only the big order")
	var env struct {
		ID         string          `json:"id"`
		DetailType string          `json:"detail-type"`
		Source     string          `json:"source"`
		Time       string          `json:"time"`
		Resources  []string        `json:"resources"`
		Detail     json.RawMessage `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(*got[0].Body), &env))
	assert.Equal(t, "com.example.order.placed", env.DetailType, "type -> DetailType")
	assert.Equal(t, "https://example.com/shop", env.Source, "source -> Source")
	assert.Equal(t, "2026-11-29T12:30:45Z", env.Time, "time -> Time")
	assert.Equal(t, []string{"arn:aws:s3:::receipts/42"}, env.Resources, "an ARN subject -> Resources")
	var detail crossbus.Event
	require.NoError(t, json.Unmarshal(env.Detail, &detail), "the whole CloudEvent is the detail")
	assert.Equal(t, order.ID(), detail.ID())
	assert.True(t, order.Time().Equal(detail.Time()), "nothing is lost: the detail keeps nanoseconds")

	decoded, err := aws.DecodeEventBridge([]byte(*got[0].Body))
	require.NoError(t, err)
	assert.Equal(t, order.ID(), decoded.ID())
	assert.JSONEq(t, `{"amount":250}`, string(decoded.Data()))

	assert.Len(t, e.raw(t, all.QueueURL, 1), 1, "a pattern on source, detail-type and resources matched")
}

func TestEventBridgeRetriesOnlyRetryableEntries(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, aws.Options{Publish: aws.EventBridge})
	_, err := e.p.ProvisionTopic(ctx, "shop", false)
	require.NoError(t, err)
	q, err := e.p.Provision(ctx, aws.Route{Subscription: "all", Topic: "shop"})
	require.NoError(t, err)
	var mu sync.Mutex
	tries := map[string]int{}
	e.srv.FailEventEntries(func(en awstest.PutEventsEntry) (string, string) {
		mu.Lock()
		defer mu.Unlock()
		tries[en.DetailType]++
		switch {
		case en.DetailType == "throttled" && tries[en.DetailType] <= 2:
			return "ThrottlingException", "Rate exceeded"
		case en.DetailType == "rejected":
			return "InvalidArgument", "Parameter Detail is not valid"
		}
		return "", ""
	})
	evs := []*crossbus.Event{}
	for _, typ := range []string{"fine", "throttled", "rejected", strings.Repeat("x", aws.MaxDetailType+1)} {
		ev := crossbus.NewEvent(typ, "/shop")
		evs = append(evs, &ev)
	}
	err = e.bus.Publish(ctx, "shop", evs...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{2, 3}, pe.FailedIndexes())
	var ee *aws.EntryError
	require.ErrorAs(t, pe.Failed[0].Err, &ee)
	assert.Equal(t, "InvalidArgument", ee.Code)
	assert.False(t, ee.Retryable)
	assert.ErrorIs(t, pe.Failed[1].Err, crossbus.ErrInvalidEvent)
	assert.Contains(t, pe.Failed[1].Err.Error(), "type")
	assert.Contains(t, pe.Failed[1].Err.Error(), "128")
	mu.Lock()
	assert.Equal(t, 3, tries["throttled"], "retried until accepted")
	assert.Equal(t, 1, tries["rejected"], "a non-retryable error is not retried")
	mu.Unlock()
	assert.Len(t, e.raw(t, q.QueueURL, 1), 2, "the fine and the throttled event arrived")
}

func TestSNSBinaryModeMapsAttributesWithinTheLimit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, aws.Options{Publish: aws.SNS, Mode: aws.Binary})
	_, err := e.p.ProvisionTopic(ctx, "users", false)
	require.NoError(t, err)
	q, err := e.p.Provision(ctx, aws.Route{Subscription: "mail", Topic: "users"})
	require.NoError(t, err)

	fits := crossbus.NewEvent("com.example.user.signedup", "/accounts")
	fits.SetSubject("user-7")
	fits.SetExtension("tenant", "acme")
	require.NoError(t, crossbus.SetData(&fits, map[string]string{"email": "a@example.com"}))
	tooMany := fits.Clone()
	tooMany.SetID("too-many")
	for i := range 6 {
		tooMany.SetExtension(fmt.Sprintf("ext%d", i), "v")
	}
	require.NoError(t, e.bus.Publish(ctx, "users", &fits, &tooMany))

	got := e.raw(t, q.QueueURL, 1)
	require.Len(t, got, 2)
	byID := map[string]sqstypes.Message{}
	for _, m := range got {
		ev, err := aws.DecodeMessage(aws.Message{ID: *m.MessageId, Body: *m.Body, Attributes: attrsOf(m)})
		require.NoError(t, err)
		byID[ev.ID()] = m
		assert.LessOrEqual(t, len(m.MessageAttributes), 10)
	}
	bin := byID[fits.ID()]
	assert.Equal(t, "com.example.user.signedup", *bin.MessageAttributes["ce-type"].StringValue)
	assert.Equal(t, "acme", *bin.MessageAttributes["ce-tenant"].StringValue)
	assert.Equal(t, "application/json", *bin.MessageAttributes["content-type"].StringValue)
	assert.JSONEq(t, `{"email":"a@example.com"}`, *bin.Body, "binary mode: the data is the body")
	st := byID["too-many"]
	assert.Equal(t, aws.StructuredContentType, *st.MessageAttributes["content-type"].StringValue, "over 10 attributes: structured")
	assert.Len(t, st.MessageAttributes, 1)
}

func attrsOf(m sqstypes.Message) map[string]aws.Attribute {
	out := map[string]aws.Attribute{}
	for k, v := range m.MessageAttributes {
		out[k] = aws.Attribute{DataType: *v.DataType, StringValue: awssdk.ToString(v.StringValue)}
	}
	return out
}

func TestSNSFIFOTopicsGroupByPartitionKeyAndDeduplicateByID(t *testing.T) {
	ctx := context.Background()
	// A FIFO topic's name ends in ".fifo", which is not a portable name:
	// Options.Topics maps the portable name onto the topic's ARN.
	const fifoARN = "arn:aws:sns:us-east-1:123456789012:payments.fifo"
	e := newEnv(t, aws.Options{Publish: aws.SNS, Topics: func(topic string) ([]string, bool) {
		if topic == "payments" {
			return []string{fifoARN}, true
		}
		return nil, false
	}})
	arn, err := e.p.ProvisionTopic(ctx, "payments", true)
	require.NoError(t, err)
	require.Equal(t, fifoARN, arn)
	q, err := e.p.Provision(ctx, aws.Route{Subscription: "ledger", Topic: arn, FIFO: true})
	require.NoError(t, err)
	ev := crossbus.NewEvent("com.example.payment", "/pay")
	crossbus.SetPartitionKey(&ev, "account-1")
	noKey := crossbus.NewEvent("com.example.payment", "/pay")
	require.ErrorIs(t, e.bus.Publish(ctx, arn, &ev), crossbus.ErrInvalidName, "an ARN is not a portable topic name")
	require.NoError(t, e.bus.Publish(ctx, "payments", &ev, &noKey))
	require.NoError(t, e.bus.Publish(ctx, "payments", &ev), "a retry of the same event")
	got := e.raw(t, q.QueueURL, 1)
	require.Len(t, got, 2, "the repeated event was deduplicated")
	groups := map[string]bool{}
	for _, m := range got {
		groups[m.Attributes["MessageGroupId"]] = true
	}
	assert.True(t, groups["account-1"], "MessageGroupId is the partition key")
}

func TestAcksAreBatchedAndFlushedOnClose(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncAck=%v", sync), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, aws.Options{SyncAck: sync})
			url, err := e.p.ProvisionTopic(ctx, "jobs", false)
			require.NoError(t, err)
			var evs []*crossbus.Event
			for range 25 {
				ev := crossbus.NewEvent("job", "/t")
				evs = append(evs, &ev)
			}
			require.NoError(t, e.bus.Publish(ctx, "jobs", evs...))
			recv, err := e.p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "jobs", Name: "jobs"})
			require.NoError(t, err)
			buf := make([]driver.Delivery, 10)
			for seen := 0; seen < 25; {
				n, err := recv.Receive(ctx, buf)
				require.NoError(t, err)
				for _, d := range buf[:n] {
					require.NoError(t, d.Ack(ctx))
					require.Error(t, d.Ack(ctx), "a delivery settles once")
				}
				seen += n
			}
			if sync {
				assertCounts(t, e, url, "0", "0")
			}
			require.NoError(t, recv.Close(ctx))
			assertCounts(t, e, url, "0", "0")
		})
	}
}

func assertCounts(t *testing.T, e *env, url, visible, inflight string) {
	t.Helper()
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	require.NoError(t, err)
	assert.Equal(t, visible, out.Attributes["ApproximateNumberOfMessages"], "visible")
	assert.Equal(t, inflight, out.Attributes["ApproximateNumberOfMessagesNotVisible"], "in flight")
}

func TestLeaseIsExtendedWhileTheHandlerRuns(t *testing.T) {
	t.Parallel() // mostly waiting
	ctx := context.Background()
	e := newEnv(t, aws.Options{})
	_, err := e.p.Provision(ctx, aws.Route{Subscription: "slow", MaxReceiveCount: 5})
	require.NoError(t, err)
	var calls atomic.Int32
	attempts := make(chan int, 4)
	sub, err := e.bus.Subscribe(ctx, "slow", "slow", crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		calls.Add(1)
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		attempts <- info.Attempt
		time.Sleep(5 * time.Second) // two and a half leases of 2s
		return nil
	}), crossbus.WithAckDeadline(2*time.Second), crossbus.WithConcurrency(2))
	require.NoError(t, err)
	defer sub.Close(ctx)
	ev := crossbus.NewEvent("slow", "/t")
	require.NoError(t, e.bus.Publish(ctx, "slow", &ev))
	assert.Equal(t, 1, <-attempts)
	time.Sleep(5500 * time.Millisecond)
	assert.Equal(t, int32(1), calls.Load(), "the other worker never got the message while the lease was extended")
}

func TestQueueWithoutRedrivePolicyUsesTheDeadLetterTopic(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, aws.Options{})
	_, err := e.p.Provision(ctx, aws.Route{Subscription: "plain"})
	require.NoError(t, err)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return crossbus.Permanent(errors.New("no")) })
	_, err = e.bus.Subscribe(ctx, "plain", "plain", h)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption, "no native dead-letter queue: a dead-letter topic is required")
	recv, err := e.p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "plain", Name: "plain"})
	require.NoError(t, err)
	defer recv.Close(ctx)
	caps := recv.(driver.ReceiverCapabilities).Capabilities()
	assert.False(t, caps.NativeDeadLetter)
	assert.False(t, caps.Ordering)
	assert.Equal(t, 30*time.Second, caps.DefaultAckDeadline, "the queue's visibility timeout")

	_, err = e.p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "x", Name: "no-such-queue"})
	require.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
	lost := crossbus.NewEvent("t", "/t")
	err = e.bus.Publish(ctx, "no-such-queue", &lost)
	require.ErrorIs(t, err, crossbus.ErrTopicNotFound)
}

func TestNackDelayIsRoundedUpAndHonoured(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, aws.Options{})
	url, err := e.p.ProvisionTopic(ctx, "retry", false)
	require.NoError(t, err)
	ev := crossbus.NewEvent("t", "/t")
	require.NoError(t, e.bus.Publish(ctx, "retry", &ev))
	recv, err := e.p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "retry", Name: url})
	require.NoError(t, err)
	defer recv.Close(ctx)
	assert.Equal(t, aws.MaxVisibility, e.bus.Capabilities().MaxRedeliveryDelay)
	buf := make([]driver.Delivery, 1)
	_, err = recv.Receive(ctx, buf)
	require.NoError(t, err)
	assert.Equal(t, 1, buf[0].Attempt())
	start := time.Now()
	require.NoError(t, buf[0].Nack(ctx, 300*time.Millisecond))
	_, err = recv.Receive(ctx, buf)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "300ms rounds up to SQS's 1s")
	assert.Equal(t, 2, buf[0].Attempt(), "ApproximateReceiveCount")
	assert.Equal(t, ev.ID(), buf[0].Event().ID())
	require.NoError(t, buf[0].Ack(ctx))
}

func TestPublishRefusesMessagesOverTheServiceLimit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, aws.Options{MaxEventBytes: 2000})
	_, err := e.p.ProvisionTopic(ctx, "small", false)
	require.NoError(t, err)
	ev := crossbus.NewEvent("t", "/t")
	// Binary data under the bus's count (1,450 bytes) grows past 2,000 bytes in base64 JSON.
	require.NoError(t, crossbus.SetData(&ev, make([]byte, 1450)))
	err = e.bus.Publish(ctx, "small", &ev)
	var se *crossbus.SizeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 2000, se.Limit)
	assert.Greater(t, se.Size, 2000)
	assert.ErrorIs(t, err, crossbus.ErrTooLarge)
}

func TestOpenByURLUsesTheConfigChainAndEndpoint(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDAWSTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "awstest-secret")
	t.Setenv("AWS_REGION", "eu-west-1") // overridden by the URL
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	c := sqs.NewFromConfig(srv.Config())
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String("orders")})
	require.NoError(t, err)

	host := strings.TrimPrefix(srv.URL, "http://")
	bus, err := crossbus.Open(ctx, "awssqs://"+host+"/123456789012/orders?region=us-east-1&endpoint="+srv.URL+"&waittime=1s")
	require.NoError(t, err)
	defer bus.Close(ctx)
	ev := crossbus.NewEvent("t", "/t")
	require.NoError(t, bus.Publish(ctx, "orders", &ev))
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)

	var client *sqs.Client
	require.True(t, bus.As(&client), "the native client is reachable")
	_, err = crossbus.Open(ctx, "awssqs:///orders?colour=blue")
	require.ErrorIs(t, err, crossbus.ErrInvalidURL)
}

func TestOptionsFromURL(t *testing.T) {
	tests := []struct {
		url    string
		target string
		queues map[string]string
		mode   aws.Mode
	}{
		{"awssqs://sqs.us-east-1.amazonaws.com/123456789012/orders", "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
			map[string]string{"orders": "https://sqs.us-east-1.amazonaws.com/123456789012/orders"}, aws.Structured},
		{"awssqs:///orders?mode=binary", "orders", nil, aws.Binary},
		{"awssns:arn:aws:sns:us-east-1:123456789012:orders?queue=https://sqs.us-east-1.amazonaws.com/123456789012/billing.fifo",
			"arn:aws:sns:us-east-1:123456789012:orders",
			map[string]string{"billing.fifo": "https://sqs.us-east-1.amazonaws.com/123456789012/billing.fifo", "billing": "https://sqs.us-east-1.amazonaws.com/123456789012/billing.fifo"}, aws.Structured},
		{"awseventbridge://orders-bus?queue=https://sqs.eu-west-1.amazonaws.com/1/q", "orders-bus",
			map[string]string{"q": "https://sqs.eu-west-1.amazonaws.com/1/q"}, aws.Structured},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			o, err := aws.OptionsFromURL(u)
			require.NoError(t, err)
			assert.Equal(t, tc.target, o.Target)
			assert.Equal(t, tc.mode, o.Mode)
			if tc.queues != nil {
				assert.Equal(t, tc.queues, o.Queues)
			}
		})
	}
	for _, bad := range []string{"awssqs:///q?mode=xml", "awssqs:///q?waittime=soon", "awssqs:///q?queue=orders"} {
		u, err := url.Parse(bad)
		require.NoError(t, err)
		_, err = aws.OptionsFromURL(u)
		assert.ErrorIs(t, err, crossbus.ErrInvalidURL, bad)
	}
}

func TestClosingLeavesNoGoroutines(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	func() {
		srv := awstest.NewServer(awstest.Options{})
		defer srv.Close()
		cfg := srv.Config()
		p, err := aws.New(ctx, aws.Options{Config: &cfg, WaitTime: time.Second})
		require.NoError(t, err)
		bus, err := crossbus.New(p)
		require.NoError(t, err)
		_, err = p.Provision(ctx, aws.Route{Subscription: "jobs", MaxReceiveCount: 3})
		require.NoError(t, err)
		done := make(chan struct{}, 50)
		_, err = bus.Subscribe(ctx, "jobs", "jobs", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			done <- struct{}{}
			return nil
		}), crossbus.WithAckDeadline(2*time.Second))
		require.NoError(t, err)
		evs := make([]*crossbus.Event, 30)
		for i := range evs {
			e := crossbus.NewEvent("t", "/t")
			evs[i] = &e
		}
		require.NoError(t, bus.Publish(ctx, "jobs", evs...))
		for range evs {
			<-done
		}
		require.NoError(t, bus.Close(ctx))
	}()
	// Polled by hand: testify's Eventually runs goroutines of its own.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestTopicNamesResolve(t *testing.T) {
	ctx := context.Background()
	t.Run("SNS names without a topic ARN in the options are found by listing topics", func(t *testing.T) {
		e := newEnv(t, aws.Options{Publish: aws.SNS})
		arn, err := e.p.ProvisionTopic(ctx, "audit", true)
		require.NoError(t, err)
		q, err := e.p.Provision(ctx, aws.Route{Subscription: "audit-log", Topic: arn, FIFO: true})
		require.NoError(t, err)
		cfg := e.srv.Config()
		p, err := aws.New(ctx, aws.Options{Publish: aws.SNS, Config: &cfg})
		require.NoError(t, err)
		ev := crossbus.NewEvent("t", "/t")
		require.NoError(t, p.Publish(ctx, "audit", []*crossbus.Event{&ev}), "audit resolves to audit.fifo")
		assert.Len(t, e.raw(t, q.QueueURL, 1), 1)
		require.ErrorIs(t, p.Publish(ctx, "nothing", []*crossbus.Event{&ev}), crossbus.ErrTopicNotFound)
	})
	t.Run("EventBridge publishes when DescribeEventBus is not allowed", func(t *testing.T) {
		e := newEnv(t, aws.Options{Publish: aws.EventBridge})
		_, err := e.p.ProvisionTopic(ctx, "restricted", false)
		require.NoError(t, err)
		q, err := e.p.Provision(ctx, aws.Route{Subscription: "r", Topic: "restricted"})
		require.NoError(t, err)
		defer e.srv.InjectFault(awstest.Fault{Service: "events", Operation: "DescribeEventBus", Code: "AccessDeniedException"})()
		ev := crossbus.NewEvent("t", "/t")
		require.NoError(t, e.bus.Publish(ctx, "restricted", &ev))
		assert.Len(t, e.raw(t, q.QueueURL, 1), 1)
	})
}
