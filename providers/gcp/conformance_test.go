package gcp_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the conformance suite on pstest. Every subtest gets its own
// fake server; NewProvider dials it like a separate process.
// DeleteSubscription deletes the subscription with the DeleteSubscription
// RPC; PublishRaw publishes bytes that claim to be a structured CloudEvent
// and are not one (see PublishRaw).
type harness struct {
	srv   *pstest.Server
	admin *gcp.Provider
	// native gives every subscription a dead-letter policy, so deliveries
	// dead-letter natively and attempts come from Pub/Sub.
	native   bool
	attempts *perSubscriptionAttempts
	// autoCreate leaves subscriptions to the provider (Options.AutoCreate),
	// which creates them when a route subscribes, with the route's filter.
	autoCreate bool
}

var (
	_ providertest.SubscriptionDeleter = (*harness)(nil)
	_ providertest.RawPublisher        = (*harness)(nil)
)

func newHarness(t *testing.T, native bool) *harness {
	srv := newServer(t)
	return &harness{srv: srv, admin: newProvider(t, srv), native: native, attempts: &perSubscriptionAttempts{seen: map[string]int32{}}}
}

func (h *harness) NewProvider(ctx context.Context) (driver.Provider, error) {
	p, err := gcp.New(ctx, gcp.Options{Project: project, Endpoint: h.srv.Addr, Insecure: true, AutoCreate: h.autoCreate,
		ClientOptions: []option.ClientOption{option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(h.attempts.intercept))}})
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
	if h.autoCreate {
		return nil // the route's Subscribe creates it
	}
	cfg := gcp.SubscriptionConfig{Ordered: o.Ordered}
	if o.FilterPattern != "" {
		// As AutoCreate does: the route's pattern becomes the filter.
		f, err := crossbus.CompilePattern(o.FilterPattern)
		if err != nil {
			return err
		}
		if cfg.Filter, _, err = gcp.SubscriptionFilter(f); err != nil {
			return err
		}
	}
	if h.native {
		cfg.DeadLetterTopic = sub + "-dlq"
		cfg.MaxDeliveryAttempts = min(max(o.MaxAttempts, 5), 100)
	}
	return h.admin.CreateSubscription(ctx, topic, sub, cfg)
}

// DeleteSubscription deletes the subscription (the DeleteSubscription RPC),
// as an operator would while consumers run; pstest then answers their pulls
// with NotFound, as Pub/Sub does.
func (h *harness) DeleteSubscription(ctx context.Context, _, sub string) error {
	return h.admin.DeleteSubscription(ctx, sub)
}

// PublishRaw publishes payload with the content-type attribute of a
// structured CloudEvent (application/cloudevents+json) through the Pub/Sub
// client, as a producer that claims to send CloudEvents but does not would.
// Bytes without any CloudEvents attribute are not undecodable on Pub/Sub:
// by the documented mapping they are messagePublished events.
func (h *harness) PublishRaw(ctx context.Context, topic string, payload []byte) error {
	pub := h.admin.Client().Publisher(topic)
	defer pub.Stop()
	_, err := pub.Publish(ctx, &pubsub.Message{Data: payload,
		Attributes: map[string]string{"content-type": "application/cloudevents+json"}}).Get(ctx)
	return err
}

// AsTarget names the native client As must reach.
func (h *harness) AsTarget() any { return new(*pubsub.Client) }

func (h *harness) Features() providertest.Features {
	return providertest.Features{
		UnknownTopicFails: true,
		// A subscription is projects/P/subscriptions/S: one topic each
		// (Subscribe refuses it on another topic with ErrInvalidOption).
		GlobalSubscriptionNames: true,
		AckDeadline:             2 * time.Second,
		Timeout:                 20 * time.Second,
		// pstest scans a subscription's whole backlog on every pull, so a
		// pull costs time proportional to the backlog; 4,000 events keep
		// the no-loss test to seconds under the race detector.
		LoadEvents:    4000,
		NativeFilters: true,
	}
}

// everySubscriptionDeadLetters declares at provider level what each of its
// receivers reports anyway (every subscription of the native run has a
// dead-letter policy), so the suite reads dead letters natively.
type everySubscriptionDeadLetters struct{ *gcp.Provider }

func (p everySubscriptionDeadLetters) Capabilities() driver.Capabilities {
	c := p.Provider.Capabilities()
	c.NativeDeadLetter = true
	return c
}

// perSubscriptionAttempts corrects a difference between pstest and Pub/Sub:
// pstest counts a message's deliveries across every subscription of its
// topic, so on a fanned-out message the first delivery to one subscription
// may report attempt 2. Pub/Sub counts per subscription. The interceptor
// rewrites DeliveryAttempt in Pull responses (set only on subscriptions
// with a dead-letter policy) to the count of deliveries of the message to
// the pulling subscription, kept for every client of the fake server, as
// Pub/Sub keeps it on the server side.
type perSubscriptionAttempts struct {
	mu   sync.Mutex
	seen map[string]int32 // subscription + "\x00" + message id -> deliveries
}

func (a *perSubscriptionAttempts) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	pr, ok := req.(*pb.PullRequest)
	resp, ok2 := reply.(*pb.PullResponse)
	if err != nil || !ok || !ok2 {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range resp.GetReceivedMessages() {
		if m.GetDeliveryAttempt() == 0 {
			continue
		}
		key := pr.GetSubscription() + "\x00" + m.GetMessage().GetMessageId()
		a.seen[key]++
		m.DeliveryAttempt = a.seen[key]
	}
	return nil
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

// TestConformanceAutoCreate runs guarantees with subscriptions the provider
// creates itself when a route subscribes (Options.AutoCreate): with the
// route's filter as their Pub/Sub filter, and with ordering for ordered
// routes. (Guarantees that read a portable dead-letter topic need its
// subscription to exist before anything is dead-lettered, so they run
// only with the harness's own subscriptions.)
func TestConformanceAutoCreate(t *testing.T) {
	providertest.RunGuarantees(t, func(t *testing.T) providertest.Harness {
		h := newHarness(t, false)
		h.autoCreate = true
		return h
	}, "FilteredSubscriptionNeverReceivesANonMatchingEvent", "AllAttributesExtensionsAndBinaryDataRoundTrip",
		"OrderedPerKeyWithConcurrentWorkers")
}
