package aws_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/providertest"
)

// liveConfig returns the AWS configuration for tests against real AWS, or
// skips the test saying why. They run only with CROSSBUS_AWS_LIVE=1 and
// credentials in the default chain; they create uniquely named queues,
// topics, buses and rules and delete them afterwards.
func liveConfig(t *testing.T) awssdk.Config {
	t.Helper()
	if os.Getenv("CROSSBUS_AWS_LIVE") != "1" {
		t.Skip("live AWS tests are off: set CROSSBUS_AWS_LIVE=1 and AWS credentials to run them")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Skipf("live AWS tests skipped: cannot load the AWS configuration: %v", err)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		t.Skipf("live AWS tests skipped: no AWS credentials in the default chain: %v", err)
	}
	if cfg.Region == "" {
		t.Skip("live AWS tests skipped: no region (set AWS_REGION)")
	}
	return cfg
}

func liveName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// liveHarness provisions real resources and removes them at the end.
type liveHarness struct {
	*harness
	cfg     awssdk.Config
	mu      sync.Mutex
	cleanup []func(context.Context)
}

func (h *liveHarness) NewProvider(ctx context.Context) (driver.Provider, error) {
	o := aws.Options{Publish: h.svc, Config: &h.cfg}
	if h.svc == aws.SQS {
		o.Topics = h.topics
	}
	return aws.New(ctx, o)
}

func (h *liveHarness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 2 * time.Second, Timeout: 60 * time.Second, LoadEvents: 500, GlobalSubscriptionNames: true}
}

func (h *liveHarness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	if err := h.harness.CreateSubscription(ctx, topic, sub, o); err != nil {
		return err
	}
	c := sqs.NewFromConfig(h.cfg)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range []string{sub, sub + "-dlq"} {
		if h.fifo {
			name += ".fifo"
		}
		h.cleanup = append(h.cleanup, func(ctx context.Context) {
			if u, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name}); err == nil {
				_, _ = c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
			}
		})
	}
	return nil
}

func TestLiveConformanceSQSFIFO(t *testing.T) {
	cfg := liveConfig(t)
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		h := &liveHarness{cfg: cfg}
		p, err := aws.New(context.Background(), aws.Options{Config: &cfg})
		require.NoError(t, err)
		h.harness = &harness{svc: aws.SQS, fifo: true, fan: map[string][]string{}, admin: p}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, f := range h.cleanup {
				f(ctx)
			}
		})
		return h
	})
}

// TestLiveEventBridgeAndSNSToSQS publishes through a real bus and topic and
// reads the events back from real queues.
func TestLiveEventBridgeAndSNSToSQS(t *testing.T) {
	cfg := liveConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, svc := range []aws.Service{aws.EventBridge, aws.SNS} {
		t.Run(string(svc), func(t *testing.T) {
			p, err := aws.New(ctx, aws.Options{Publish: svc, Config: &cfg})
			require.NoError(t, err)
			bus, err := crossbus.New(p)
			require.NoError(t, err)
			defer bus.Close(ctx)
			topicName, queueName := liveName("crossbus-live"), liveName("crossbus-live")
			topic, err := p.ProvisionTopic(ctx, topicName, false)
			require.NoError(t, err)
			q, err := p.Provision(ctx, aws.Route{Subscription: queueName, Topic: topic, MaxReceiveCount: 3})
			require.NoError(t, err)
			t.Cleanup(func() { liveCleanup(cfg, svc, topic, queueName, q) })
			time.Sleep(5 * time.Second) // rules and subscriptions take a moment to apply

			got := make(chan *crossbus.Event, 1)
			sub, err := bus.Subscribe(ctx, topic, queueName, crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
				select {
				case got <- e:
				default:
				}
				return nil
			}))
			require.NoError(t, err)
			defer sub.Close(ctx)
			ev := crossbus.NewEvent("com.example.live", "/crossbus/live")
			require.NoError(t, crossbus.SetData(&ev, map[string]string{"hello": "aws"}))
			require.NoError(t, bus.Publish(ctx, topic, &ev))
			select {
			case e := <-got:
				assert.Equal(t, ev.ID(), e.ID())
				assert.JSONEq(t, `{"hello":"aws"}`, string(e.Data()))
			case <-time.After(90 * time.Second):
				t.Fatal("the event did not arrive within 90s")
			}
		})
	}
}

func liveCleanup(cfg awssdk.Config, svc aws.Service, topic, queue string, q aws.Provisioned) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := sqs.NewFromConfig(cfg)
	for _, u := range []string{q.QueueURL, q.DeadLetterQueueURL} {
		if u != "" {
			_, _ = c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &u})
		}
	}
	switch svc {
	case aws.EventBridge:
		eb := eventbridge.NewFromConfig(cfg)
		_, _ = eb.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: &queue, EventBusName: &topic, Ids: []string{"crossbus-sqs"}})
		_, _ = eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: &queue, EventBusName: &topic})
		_, _ = eb.DeleteEventBus(ctx, &eventbridge.DeleteEventBusInput{Name: &topic})
	case aws.SNS:
		_, _ = sns.NewFromConfig(cfg).DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: &topic})
	}
}
