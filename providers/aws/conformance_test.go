package aws_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the conformance suite against the test server through the
// real SDK. Every subscription is an SQS queue with a dead-letter queue
// (maxReceiveCount = the suite's MaxAttempts), wired to its topic by
// Provision: an EventBridge rule, an SNS subscription (raw and enveloped
// delivery alternate), or (SQS alone) the provider's own fan-out table.
// DeleteSubscription deletes the queue with SQS DeleteQueue.
type harness struct {
	t    *testing.T
	srv  *awstest.Server
	svc  aws.Service
	fifo bool
	mode aws.Mode

	admin  *aws.Provider
	sqs    *sqs.Client
	mu     sync.Mutex
	fan    map[string][]string // SQS alone: topic -> subscription queues
	queues map[string]string   // subscription -> queue URL
	subs   int
}

var (
	_ providertest.SubscriptionDeleter = (*harness)(nil)
	_ providertest.RawPublisher        = (*harness)(nil)
)

func newHarness(t *testing.T, srv *awstest.Server, svc aws.Service, fifo bool, mode aws.Mode) *harness {
	h := &harness{t: t, srv: srv, svc: svc, fifo: fifo, mode: mode, fan: map[string][]string{}, queues: map[string]string{},
		sqs: sqs.NewFromConfig(srv.Config())}
	p, err := h.NewProvider(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.admin = p.(*aws.Provider)
	t.Cleanup(func() { _ = h.admin.Close(context.Background()) })
	return h
}

func (h *harness) topics(topic string) ([]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs, ok := h.fan[topic]
	return append([]string(nil), subs...), ok
}

func (h *harness) NewProvider(ctx context.Context) (driver.Provider, error) {
	cfg := h.srv.Config()
	// A short long-poll: operations reads (package ops) end when a queue
	// is quiet for longer than one poll.
	o := aws.Options{Publish: h.svc, Config: &cfg, Mode: h.mode, WaitTime: time.Second,
		Target: "arn:aws:sns:" + h.srv.Region() + ":" + h.srv.AccountID() + ":topics"}
	if h.svc == aws.SQS {
		o.Topics = h.topics
	}
	return aws.New(ctx, o)
}

func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	if h.svc == aws.SQS {
		h.mu.Lock()
		h.fan[topic] = []string{}
		h.mu.Unlock()
		return nil
	}
	_, err := h.admin.ProvisionTopic(ctx, topic, h.fifo)
	return err
}

func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	maxReceives := o.MaxAttempts
	if maxReceives <= 0 {
		maxReceives = 100
	}
	h.mu.Lock()
	h.subs++
	enveloped := h.subs%2 == 0
	h.mu.Unlock()
	route := aws.Route{Subscription: sub, Topic: topic, FIFO: h.fifo, MaxReceiveCount: maxReceives, Enveloped: enveloped}
	if o.FilterPattern != "" && (h.svc == aws.EventBridge || h.svc == aws.SNS && h.mode == aws.Structured) {
		// The rule routing to the queue gets the route's pattern; an SNS
		// subscription, its filter policy.
		f, err := crossbus.CompilePattern(o.FilterPattern)
		if err != nil {
			return err
		}
		route.Filter = f
	}
	out, err := h.admin.Provision(ctx, route)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queues[sub] = out.QueueURL
	if h.svc == aws.SQS {
		h.fan[topic] = append(h.fan[topic], sub)
	}
	return nil
}

// DeleteSubscription deletes the subscription's queue (SQS DeleteQueue), as
// an operator would; its SNS subscription or EventBridge rule stays, as it
// does on AWS, where deliveries to a deleted queue fail.
func (h *harness) DeleteSubscription(ctx context.Context, topic, sub string) error {
	h.mu.Lock()
	url, ok := h.queues[sub]
	if subs, fanned := h.fan[topic]; fanned {
		h.fan[topic] = slices.DeleteFunc(slices.Clone(subs), func(s string) bool { return s == sub })
	}
	delete(h.queues, sub)
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("harness: no subscription %q", sub)
	}
	_, err := h.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &url})
	return err
}

// PublishRaw puts payload on the topic's queues as an SQS message that
// claims to be a structured CloudEvent (content-type
// application/cloudevents+json) but is not one: that is what is undecodable
// on AWS, since a body without CloudEvents attributes is a native message
// that the documented mapping turns into an aws.sqs.message event. SQS and
// SNS bodies must be text SQS accepts, and EventBridge details JSON objects,
// so payloads outside that skip the test, saying why
// (TestMalformedCloudEventIsDeadLetteredByTheCore covers the path then).
func (h *harness) PublishRaw(ctx context.Context, topic string, payload []byte) error {
	if h.svc == aws.EventBridge {
		h.t.Skip("EventBridge details are JSON objects: raw bytes cannot be put on an EventBridge bus; TestMalformedCloudEventIsDeadLetteredByTheCore covers undecodable SQS messages")
	}
	if r, ok := sqsText(payload); !ok {
		h.t.Skipf("SQS and SNS message bodies must be text SQS accepts, and the payload holds %U: it cannot be sent; a body without CloudEvents attributes would be an aws.sqs.message event anyway. TestMalformedCloudEventIsDeadLetteredByTheCore covers undecodable SQS messages", r)
	}
	body := string(payload)
	ct := map[string]string{aws.AttrContentType: "application/cloudevents+json"}
	if h.svc == aws.SNS {
		arn := "arn:aws:sns:" + h.srv.Region() + ":" + h.srv.AccountID() + ":" + topic
		if h.fifo {
			arn += ".fifo"
		}
		in := &sns.PublishInput{TopicArn: &arn, Message: &body, MessageAttributes: map[string]snstypes.MessageAttributeValue{
			aws.AttrContentType: {DataType: awssdk.String("String"), StringValue: awssdk.String(ct[aws.AttrContentType])}}}
		if h.fifo {
			in.MessageGroupId, in.MessageDeduplicationId = awssdk.String("raw"), awssdk.String(fmt.Sprintf("raw-%x", sha256.Sum256(payload)))
		}
		_, err := sns.NewFromConfig(h.srv.Config()).Publish(ctx, in)
		return err
	}
	targets, _ := h.topics(topic)
	for _, sub := range targets {
		h.mu.Lock()
		url := h.queues[sub]
		h.mu.Unlock()
		in := &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body, MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			aws.AttrContentType: {DataType: awssdk.String("String"), StringValue: awssdk.String(ct[aws.AttrContentType])}}}
		if h.fifo {
			in.MessageGroupId, in.MessageDeduplicationId = awssdk.String("raw"), awssdk.String(fmt.Sprintf("raw-%x", sha256.Sum256(payload)))
		}
		if _, err := h.sqs.SendMessage(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// sqsText reports whether b is text SQS accepts in a message body (#x9, #xA,
// #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF), or the first rune it
// refuses.
func sqsText(b []byte) (rune, bool) {
	for _, r := range string(b) {
		ok := r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
		if !ok || r == utf8.RuneError {
			return r, false
		}
	}
	return 0, true
}

// AsTarget names the native client As must reach.
func (h *harness) AsTarget() any { return new(*sqs.Client) }

func (h *harness) Features() providertest.Features {
	// A subscription is the SQS queue of its name: provisioned on a second
	// topic, the queue receives both topics' events (fan-in).
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 2 * time.Second, Timeout: 20 * time.Second, LoadEvents: loadEvents,
		NativeFilters: h.svc == aws.EventBridge || h.svc == aws.SNS && h.mode == aws.Structured, GlobalSubscriptionNames: true}
}

func runConformance(t *testing.T, svc aws.Service, fifo bool, mode aws.Mode) {
	t.Parallel() // each suite has its own server; most of the time is spent waiting
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, srv, svc, fifo, mode) })
	if errs := srv.DeliveryErrors(); len(errs) > 0 {
		t.Errorf("the test server could not deliver: %v", errs)
	}
}

func TestConformanceEventBridgeToSQS(t *testing.T) {
	runConformance(t, aws.EventBridge, false, aws.Structured)
}

func TestConformanceSNSToSQS(t *testing.T) { runConformance(t, aws.SNS, false, aws.Structured) }

func TestConformanceSQS(t *testing.T) { runConformance(t, aws.SQS, false, aws.Binary) }

func TestConformanceSQSFIFO(t *testing.T) { runConformance(t, aws.SQS, true, aws.Structured) }
