package gcp

import (
	"context"
	"fmt"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/crossbus/crossbus/driver"
)

// Limits of a subscription's settings.
const (
	minSubscriptionAckDeadline = 10 * time.Second
	defaultMaxDeliveryAttempts = 5
	minMaxDeliveryAttempts     = 5
	maxMaxDeliveryAttempts     = 100
	maxFilterBytes             = 256
)

// SubscriptionConfig is what CreateSubscription sets up. The zero value is a
// plain subscription with the service's defaults.
type SubscriptionConfig struct {
	// Ordered enables message ordering: messages with the same ordering key
	// (partitionkey) are delivered in publish order.
	Ordered bool
	// AckDeadline is the subscription's ack deadline, 10s..600s (default
	// 10s). Receivers set their route's lease per message anyway.
	AckDeadline time.Duration
	// DeadLetterTopic gives the subscription a dead-letter policy: its
	// receivers dead-letter natively (Delivery.DeadLetter publishes there)
	// and Pub/Sub reports delivery attempts. Created if missing, together
	// with a subscription on it named DeadLetterSubscriptionName(sub) so
	// that dead letters are kept from the start.
	DeadLetterTopic string
	// MaxDeliveryAttempts is the policy's limit, 5..100 (default 5), after
	// which Pub/Sub forwards a message itself. Set it to at least the
	// route's RetryPolicy.MaxAttempts, so the retry policy decides first
	// and the dead letter carries crossbus's reason.
	MaxDeliveryAttempts int
	// MinBackoff and MaxBackoff set the subscription's retry policy (the
	// delay before redelivering a nacked or expired message, 0..600s).
	// Zero leaves the service's immediate redelivery.
	MinBackoff, MaxBackoff time.Duration
	// Filter is a Pub/Sub filter expression over message attributes (at
	// most 256 bytes; it cannot be changed later), such as
	// `attributes.ce-type = "com.example.order.placed"` or
	// `hasPrefix(attributes.ce-source, "/shop/")`. Only matching messages
	// are delivered, which saves traffic; the route still filters locally,
	// so a filter must select a superset of what the route wants. Events in
	// structured mode keep their ce- attributes (except ce-specversion), so
	// such filters work for them too.
	Filter string
}

// DeadLetterSubscriptionName is the subscription CreateSubscription makes
// on the dead-letter topic of sub, and the one SubscribeDeadLetters reads.
func DeadLetterSubscriptionName(sub string) string { return sub + "-deadletter" }

// CreateTopic creates a topic; it is a no-op when the topic exists. It is a
// provisioning helper for development and tests.
func (p *Provider) CreateTopic(ctx context.Context, topic string) error {
	return p.ensureTopic(ctx, p.topicName(topic))
}

// CreateSubscription creates subscription sub of topic with cfg; it is a
// no-op when the subscription exists (its settings are left as they are).
// It is a provisioning helper for development and tests: production
// subscriptions are usually managed with infrastructure tooling.
func (p *Provider) CreateSubscription(ctx context.Context, topic, sub string, cfg SubscriptionConfig) error {
	s, err := p.subscriptionProto(topic, sub, cfg)
	if err != nil {
		return err
	}
	if cfg.DeadLetterTopic != "" {
		if err := p.CreateTopic(ctx, cfg.DeadLetterTopic); err != nil {
			return err
		}
		if err := p.CreateSubscription(ctx, cfg.DeadLetterTopic, DeadLetterSubscriptionName(sub), SubscriptionConfig{}); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err = p.client.SubscriptionAdminClient.CreateSubscription(ctx, s)
	switch grpcCode(err) {
	case codes.OK, codes.AlreadyExists:
		return nil
	case codes.NotFound:
		return fmt.Errorf("gcp: create subscription %q: %w: %w", sub, driver.ErrTopicNotFound, err)
	}
	return p.watch.explain(subscriptionError("create", s.Name, err))
}

func (p *Provider) subscriptionProto(topic, sub string, cfg SubscriptionConfig) (*pb.Subscription, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: gcp: subscription %q: "+format, append([]any{driver.ErrInvalidOption, sub}, args...)...)
	}
	s := &pb.Subscription{Name: p.subscriptionName(sub), Topic: p.topicName(topic), EnableMessageOrdering: cfg.Ordered, Filter: cfg.Filter}
	if len(cfg.Filter) > maxFilterBytes {
		return nil, bad("Filter is %d bytes, over Pub/Sub's limit of %d bytes", len(cfg.Filter), maxFilterBytes)
	}
	if cfg.AckDeadline != 0 {
		if cfg.AckDeadline < minSubscriptionAckDeadline || cfg.AckDeadline > maxLease {
			return nil, bad("AckDeadline must be %v..%v, got %v", minSubscriptionAckDeadline, maxLease, cfg.AckDeadline)
		}
		s.AckDeadlineSeconds = leaseSeconds(cfg.AckDeadline)
	}
	if cfg.DeadLetterTopic != "" {
		n := cfg.MaxDeliveryAttempts
		if n == 0 {
			n = defaultMaxDeliveryAttempts
		}
		if n < minMaxDeliveryAttempts || n > maxMaxDeliveryAttempts {
			return nil, bad("MaxDeliveryAttempts must be %d..%d, got %d", minMaxDeliveryAttempts, maxMaxDeliveryAttempts, n)
		}
		s.DeadLetterPolicy = &pb.DeadLetterPolicy{DeadLetterTopic: p.topicName(cfg.DeadLetterTopic), MaxDeliveryAttempts: int32(n)}
	} else if cfg.MaxDeliveryAttempts != 0 {
		return nil, bad("MaxDeliveryAttempts needs a DeadLetterTopic")
	}
	if cfg.MinBackoff != 0 || cfg.MaxBackoff != 0 {
		if cfg.MinBackoff < 0 || cfg.MaxBackoff > maxLease || cfg.MaxBackoff < cfg.MinBackoff {
			return nil, bad("backoff must satisfy 0 <= MinBackoff <= MaxBackoff <= %v, got %v and %v", maxLease, cfg.MinBackoff, cfg.MaxBackoff)
		}
		s.RetryPolicy = &pb.RetryPolicy{MinimumBackoff: durationpb.New(cfg.MinBackoff), MaximumBackoff: durationpb.New(cfg.MaxBackoff)}
	}
	return s, nil
}

// DeleteSubscription deletes a subscription (a no-op when it is missing).
func (p *Provider) DeleteSubscription(ctx context.Context, sub string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := p.client.SubscriptionAdminClient.DeleteSubscription(ctx, &pb.DeleteSubscriptionRequest{Subscription: p.subscriptionName(sub)})
	if err != nil && grpcCode(err) != codes.NotFound {
		return subscriptionError("delete", sub, err)
	}
	return nil
}

// DeleteTopic deletes a topic (a no-op when it is missing).
func (p *Provider) DeleteTopic(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := p.client.TopicAdminClient.DeleteTopic(ctx, &pb.DeleteTopicRequest{Topic: p.topicName(topic)})
	if err != nil && grpcCode(err) != codes.NotFound {
		return topicError("delete", topic, err)
	}
	return nil
}

// SubscribeDeadLetters opens a receiver over the dead letters of
// subscription: the subscription DeadLetterSubscriptionName(subscription)
// on the dead-letter topic of its dead-letter policy, or the only
// subscription of that topic. It returns an error wrapping
// driver.ErrNotSupported when the subscription has no dead-letter policy.
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	name := p.subscriptionName(subscription)
	info, err := p.subscriptionInfo(ctx, name)
	if err != nil {
		return nil, p.watch.explain(subscriptionError("read", name, err))
	}
	if !info.known {
		return nil, fmt.Errorf("gcp: subscription %q: no permission to read its dead-letter policy: %w", name, driver.ErrNotSupported)
	}
	if info.deadLetterTopic == "" {
		return nil, fmt.Errorf("gcp: subscription %q has no dead-letter policy: %w", name, driver.ErrNotSupported)
	}
	dlSub := p.subscriptionName(DeadLetterSubscriptionName(subscription))
	if _, err := p.subscriptionInfo(ctx, dlSub); grpcCode(err) == codes.NotFound {
		subs, lerr := p.topicSubscriptions(ctx, info.deadLetterTopic)
		if lerr != nil || len(subs) != 1 {
			return nil, fmt.Errorf("gcp: dead letters of %q: no subscription %q on dead-letter topic %q (and not exactly one other): %w",
				name, dlSub, info.deadLetterTopic, driver.ErrSubscriptionNotFound)
		}
		dlSub = subs[0]
	}
	return p.Subscribe(ctx, driver.SubscriptionSpec{Topic: info.deadLetterTopic, Name: dlSub})
}

func (p *Provider) topicSubscriptions(ctx context.Context, topic string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	it := p.client.TopicAdminClient.ListTopicSubscriptions(ctx, &pb.ListTopicSubscriptionsRequest{Topic: topic})
	var out []string
	for {
		s, err := it.Next()
		if err != nil {
			if len(out) > 0 || isIteratorDone(err) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, s)
		if len(out) > 1 {
			return out, nil
		}
	}
}
