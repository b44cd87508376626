package crossbus

import (
	"context"
	"fmt"

	"github.com/crossbus/crossbus/driver"
)

// Endpoint runs a route's pipeline for events a platform pushes instead of
// letting them be pulled: Pub/Sub push and Eventarc to Cloud Run, Event Grid
// webhooks, Lambda and Azure Functions triggers. Filters, middleware,
// idempotency, the retry policy and dead-lettering behave exactly as for a
// pulled delivery; the push adapter maps the settlement to what the platform
// expects (2xx for ack, a retryable status or failed batch item for nack).
//
// A failed attempt is never retried in place: the delivery is nacked and the
// platform retries it with its own schedule. The attempt number comes from the
// platform (Pub/Sub deliveryAttempt, Event Grid delivery count, SQS
// ApproximateReceiveCount); after the policy's last attempt, or on a permanent
// error, the event goes to the dead-letter topic and is acked.
type Endpoint struct {
	s *Subscription
}

// NewEndpoint returns an Endpoint that runs h for pushed events of
// subscription. Options are those of a route; WithDeadLetterTopic is needed
// unless the push deliveries support DeadLetter natively, because the
// endpoint publishes dead letters through the bus.
func (b *Bus) NewEndpoint(topic, subscription string, h Handler, opts ...RouteOption) (*Endpoint, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler for endpoint %q", ErrInvalidOption, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(false)
	}
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", subscription, err)
	}
	return b.newEndpoint(topic, subscription, h, cfg)
}

func (b *Bus) newEndpoint(topic, subscription string, h Handler, cfg routeConfig) (*Endpoint, error) {
	if err := ValidateName(subscription); err != nil {
		return nil, errorf("endpoint: subscription: %w", err)
	}
	if topic != "" {
		if err := ValidateName(topic); err != nil {
			return nil, errorf("endpoint %q: topic: %w", subscription, err)
		}
	}
	if cfg.deadLetterTopic == "" {
		return nil, fmt.Errorf("%w: endpoint %q: set WithDeadLetterTopic; pushed events that fail for good are published there", ErrInvalidOption, subscription)
	}
	s := newSubscription(b, topic, subscription, cfg, driver.Capabilities{DelayedRedelivery: true})
	s.push = true
	s.settleCtx = context.Background()
	if cfg.batchHandler == nil {
		s.handler = s.buildHandler(h)
	}
	s.recvCtx, s.stopRecv = context.WithCancel(context.Background())
	s.handlerCtx, s.abort = s.recvCtx, s.stopRecv
	return &Endpoint{s: s}, nil
}

// Endpoint returns an Endpoint for a route registered with Handle (with the
// router's middleware) or HandleBatch, for serving that route from a push
// adapter.
func (r *Router) Endpoint(topic, subscription string) (*Endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range r.routes {
		if rt.topic == topic && rt.subscription == subscription {
			cfg := rt.cfg
			if cfg.batchHandler == nil {
				cfg.middleware = append(append([]Middleware(nil), r.mw...), cfg.middleware...)
			}
			return r.bus.newEndpoint(topic, subscription, rt.handler, cfg)
		}
	}
	return nil, errorf("no route for subscription %q of topic %q: %w", subscription, topic, ErrSubscriptionNotFound)
}

// Deliver runs the pipeline for one pushed delivery and settles it before
// returning. Handlers get a context derived from ctx (the request's). On a
// batch endpoint it is DeliverBatch of one delivery.
func (ep *Endpoint) Deliver(ctx context.Context, d driver.Delivery) {
	if ep.s.cfg.batchHandler != nil {
		ep.DeliverBatch(ctx, []driver.Delivery{d})
		return
	}
	if !ep.s.pushRateLimit(ctx, 1) {
		ep.s.nack(d, 0)
		return
	}
	ep.s.process(ctx, d)
}
