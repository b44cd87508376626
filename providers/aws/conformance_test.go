package aws_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the conformance suite against the test server through the
// real SDK. Every subscription is an SQS queue with a dead-letter queue
// (maxReceiveCount = the suite's MaxAttempts), wired to its topic by
// Provision: an EventBridge rule, an SNS subscription (raw and enveloped
// delivery alternate), or (SQS alone) the provider's own fan-out table.
type harness struct {
	srv  *awstest.Server
	svc  aws.Service
	fifo bool
	mode aws.Mode

	admin *aws.Provider
	mu    sync.Mutex
	fan   map[string][]string // SQS alone: topic -> subscription queues
	subs  int
}

func newHarness(t *testing.T, srv *awstest.Server, svc aws.Service, fifo bool, mode aws.Mode) *harness {
	h := &harness{srv: srv, svc: svc, fifo: fifo, mode: mode, fan: map[string][]string{}}
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

func (h *harness) NewProvider(ctx context.Context) (crossbus.Provider, error) {
	cfg := h.srv.Config()
	o := aws.Options{Publish: h.svc, Config: &cfg, Mode: h.mode,
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
	_, err := h.admin.Provision(ctx, aws.Route{Subscription: sub, Topic: topic, FIFO: h.fifo, MaxReceiveCount: maxReceives, Enveloped: enveloped})
	if err != nil {
		return err
	}
	if h.svc == aws.SQS {
		h.mu.Lock()
		h.fan[topic] = append(h.fan[topic], sub)
		h.mu.Unlock()
	}
	return nil
}

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 2 * time.Second, Timeout: 20 * time.Second, LoadEvents: loadEvents}
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
