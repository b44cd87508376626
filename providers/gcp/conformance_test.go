package gcp_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the conformance suite on pstest. Every subtest gets its own
// fake server; NewProvider dials it like a separate process.
type harness struct {
	srv   *pstest.Server
	admin *gcp.Provider
	// native gives every subscription a dead-letter policy, so deliveries
	// dead-letter natively and attempts come from Pub/Sub.
	native bool
}

func newHarness(t *testing.T, native bool) *harness {
	srv := newServer(t)
	return &harness{srv: srv, admin: newProvider(t, srv), native: native}
}

func (h *harness) NewProvider(ctx context.Context) (crossbus.Provider, error) {
	p, err := gcp.New(ctx, gcp.Options{Project: project, Endpoint: h.srv.Addr, Insecure: true})
	if err != nil {
		return nil, err
	}
	if h.native {
		return everySubscriptionDeadLetters{p}, nil
	}
	return p, nil
}

func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	return h.admin.CreateTopic(ctx, topic)
}

func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	cfg := gcp.SubscriptionConfig{Ordered: o.Ordered}
	if h.native {
		cfg.DeadLetterTopic = sub + "-dlq"
		cfg.MaxDeliveryAttempts = min(max(o.MaxAttempts, 5), 100)
	}
	return h.admin.CreateSubscription(ctx, topic, sub, cfg)
}

func (h *harness) Features() providertest.Features {
	return providertest.Features{
		UnknownTopicFails: true,
		AckDeadline:       2 * time.Second,
		Timeout:           20 * time.Second,
		// pstest scans a subscription's whole backlog on every pull, so a
		// pull costs time proportional to the backlog; 4,000 events keep
		// the no-loss test to seconds under the race detector.
		LoadEvents: 4000,
	}
}

// everySubscriptionDeadLetters declares at provider level what each of its
// receivers reports anyway (every subscription of the native run has a
// dead-letter policy), so the suite reads dead letters natively.
type everySubscriptionDeadLetters struct{ *gcp.Provider }

func (p everySubscriptionDeadLetters) Capabilities() crossbus.Capabilities {
	c := p.Provider.Capabilities()
	c.NativeDeadLetter = true
	return c
}

// TestConformance runs the suite twice against pstest: with plain
// subscriptions (the portable dead-letter topic; attempts counted by the
// receiver) and with dead-letter policies (native dead letters; attempts
// from Pub/Sub's delivery attempt), in parallel: each subtest has its own
// fake server.
func TestConformance(t *testing.T) {
	t.Run("PortableDeadLetter", func(t *testing.T) {
		t.Parallel()
		providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, false) })
	})
	t.Run("NativeDeadLetter", func(t *testing.T) {
		t.Parallel()
		providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, true) })
	})
}
