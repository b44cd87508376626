package gcp

import (
	"cmp"
	"context"
	"fmt"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp/internal/attempts"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// subscriptionInfo is what a receiver needs to know of its subscription.
// known is false when the caller may consume but not read the subscription
// (the roles/pubsub.subscriber role lacks pubsub.subscriptions.get).
type subscriptionInfo struct {
	known           bool
	topic           string // resource name
	ackDeadline     time.Duration
	ordered         bool
	deadLetterTopic string
	maxDelivery     int
	filter          string // the subscription's filter, "" for none
}

// Subscribe opens a receiver on spec.Name, a subscription of spec.Topic
// (short names belong to the provider's project; resource names
// "projects/P/subscriptions/S" are used as they are). It reads the
// subscription's settings: with a dead-letter policy the receiver reports
// NativeDeadLetter and attempts come from Pub/Sub's delivery attempt count;
// otherwise the portable dead-letter topic is used and attempts are counted
// by this receiver. A missing subscription is an error wrapping
// driver.ErrSubscriptionNotFound unless Options.AutoCreate is set.
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if p.isClosed() {
		return nil, fmt.Errorf("gcp: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	if spec.Name == "" {
		return nil, fmt.Errorf("%w: gcp: subscribe needs a subscription name", driver.ErrInvalidOption)
	}
	name := p.subscriptionName(spec.Name)
	info, err := p.subscriptionInfo(ctx, name)
	if err != nil && grpcCode(err) == codes.NotFound && p.opts.AutoCreate && spec.Topic != "" {
		err = p.CreateTopic(ctx, spec.Topic)
		if err == nil {
			// The route's filter becomes the subscription's (its exact
			// translation or a superset): Pub/Sub then acknowledges what the
			// route would skip without delivering it.
			filter, _, _ := patternFilter(spec.FilterPattern)
			err = p.CreateSubscription(ctx, spec.Topic, spec.Name, SubscriptionConfig{Ordered: spec.Ordered, Filter: filter})
		}
		if err == nil {
			info, err = p.subscriptionInfo(ctx, name)
		}
	}
	if err != nil {
		return nil, p.watch.explain(subscriptionError("open", name, err))
	}
	if info.known && spec.Topic != "" {
		want := p.topicName(spec.Topic)
		switch info.topic {
		case want:
		case "_deleted-topic_":
			return nil, fmt.Errorf("gcp: subscription %q: its topic was deleted: %w", name, driver.ErrTopicNotFound)
		default:
			return nil, fmt.Errorf("%w: gcp: subscription %q receives from %q, not from %q", driver.ErrInvalidOption, name, info.topic, want)
		}
	}
	if !info.known {
		info.topic = p.topicName(spec.Topic)
		info.ordered = spec.Ordered
	}
	if info.deadLetterTopic != "" && spec.MaxAttempts > info.maxDelivery {
		p.log.Warn("gcp: the subscription's dead-letter policy forwards messages before the retry policy's last attempt",
			"subscription", name, "maxDeliveryAttempts", info.maxDelivery, "retryMaxAttempts", spec.MaxAttempts)
	}
	r := p.newReceiver(name, info, spec.AckDeadline)
	if info.filter != "" {
		want, exact, ok := patternFilter(spec.FilterPattern)
		r.native = driver.NativeFilter{Expression: info.filter, Exact: ok && exact && want == info.filter}
	}
	if !p.receivers.Add(r) {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("gcp: subscribe: %w", driver.ErrClosed)
	}
	return r, nil
}

// subscriptionInfo reads the subscription's settings. PermissionDenied is
// not an error: consuming needs only pubsub.subscriptions.consume, so the
// receiver then works with what it cannot read left unknown.
func (p *Provider) subscriptionInfo(ctx context.Context, name string) (subscriptionInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	s, err := p.client.SubscriptionAdminClient.GetSubscription(ctx, &pb.GetSubscriptionRequest{Subscription: name})
	if grpcCode(err) == codes.PermissionDenied {
		return subscriptionInfo{}, nil
	}
	if err != nil {
		return subscriptionInfo{}, err
	}
	info := subscriptionInfo{known: true, topic: s.GetTopic(), ordered: s.GetEnableMessageOrdering(),
		ackDeadline: cmp.Or(time.Duration(s.GetAckDeadlineSeconds())*time.Second, defaultLease), filter: s.GetFilter()}
	if dl := s.GetDeadLetterPolicy(); dl != nil && dl.GetDeadLetterTopic() != "" {
		info.deadLetterTopic = dl.GetDeadLetterTopic()
		info.maxDelivery = cmp.Or(int(dl.GetMaxDeliveryAttempts()), defaultMaxDeliveryAttempts)
	}
	return info, nil
}

func (p *Provider) newReceiver(name string, info subscriptionInfo, specLease time.Duration) *receiver {
	lease := specLease
	if lease <= 0 {
		lease = p.opts.AckDeadline
	}
	if lease <= 0 {
		lease = info.ackDeadline
	}
	if lease <= 0 {
		lease = defaultLease
	}
	lease = min(lease, maxLease)
	maxMsgs := cmp.Or(p.opts.MaxOutstandingMessages, defaultMaxMsg)
	maxBytes := cmp.Or(p.opts.MaxOutstandingBytes, defaultMaxB)
	caps := p.Capabilities()
	caps.NativeDeadLetter = info.deadLetterTopic != ""
	caps.Ordering = info.ordered && !p.opts.DisableOrderingKeys
	caps.DefaultAckDeadline = lease
	r := &receiver{
		p:         p,
		sub:       name,
		origin:    pubsubwire.Origin{Topic: info.topic, Subscription: name},
		ordered:   info.ordered,
		dlTopic:   info.deadLetterTopic,
		leaseSecs: leaseSeconds(lease),
		caps:      caps,
		maxMsgs:   maxMsgs,
		maxBytes:  maxBytes,
		batches:   map[*batch]struct{}{},
		settler:   newSettler(p.client.SubscriptionAdminClient, name, p.log),
	}
	// The service leases pulled messages for the subscription's deadline;
	// a different lease is set right after each pull.
	r.receiptModack = !info.known || info.ackDeadline != time.Duration(r.leaseSecs)*time.Second
	if info.deadLetterTopic == "" {
		r.attempts = attempts.New(0)
	}
	r.closeCtx, r.cancel = context.WithCancel(context.Background())
	return r
}
