package crossbus

import (
	"context"
	"fmt"
	"sync"
	"time"
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
	s := newSubscription(b, topic, subscription, cfg, Capabilities{DelayedRedelivery: true})
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
func (ep *Endpoint) Deliver(ctx context.Context, d Delivery) {
	if ep.s.cfg.batchHandler != nil {
		ep.DeliverBatch(ctx, []Delivery{d})
		return
	}
	if !ep.s.pushRateLimit(ctx, 1) {
		ep.s.nack(d, 0)
		return
	}
	ep.s.process(ctx, d)
}

// Outcome is how a pushed delivery was settled.
type Outcome int

const (
	// Unsettled: the pipeline has not settled the delivery.
	Unsettled Outcome = iota
	// Acked: handled (or filtered out, a duplicate, or dead-lettered
	// through the dead-letter topic): answer success.
	Acked
	// Nacked: to be retried: answer with a retryable failure.
	Nacked
	// DeadLettered: moved to the platform's dead-letter destination by
	// DeadLetter (only for PushDeliveries built with native dead-lettering).
	DeadLettered
)

func (o Outcome) String() string {
	return [...]string{"unsettled", "acked", "nacked", "dead-lettered"}[o]
}

// PushDelivery is a Delivery for push adapters: it records how the pipeline
// settled it, for the adapter to turn into a response.
type PushDelivery struct {
	ev      *Event
	attempt int
	native  func(ctx context.Context, info DeadLetterInfo) error

	mu      sync.Mutex
	outcome Outcome
	delay   time.Duration
	info    DeadLetterInfo
}

// NewPushDelivery wraps a pushed event and the platform's attempt number
// (1 when the platform does not say).
func NewPushDelivery(e *Event, attempt int) *PushDelivery {
	if attempt < 1 {
		attempt = 1
	}
	return &PushDelivery{ev: e, attempt: attempt}
}

// WithNativeDeadLetter makes DeadLetter call fn (for platforms with their own
// dead-letter destination) instead of reporting ErrNotSupported.
func (p *PushDelivery) WithNativeDeadLetter(fn func(ctx context.Context, info DeadLetterInfo) error) *PushDelivery {
	p.native = fn
	return p
}

// Event implements Delivery.
func (p *PushDelivery) Event() *Event { return p.ev }

// Attempt implements Delivery.
func (p *PushDelivery) Attempt() int { return p.attempt }

func (p *PushDelivery) settle(o Outcome, delay time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outcome != Unsettled {
		return errorf("pushed delivery of %q already %v", p.ev.ID(), p.outcome)
	}
	p.outcome, p.delay = o, delay
	return nil
}

// Ack implements Delivery.
func (p *PushDelivery) Ack(ctx context.Context) error { return p.settle(Acked, 0) }

// Nack implements Delivery.
func (p *PushDelivery) Nack(ctx context.Context, delay time.Duration) error {
	return p.settle(Nacked, delay)
}

// DeadLetter implements Delivery.
func (p *PushDelivery) DeadLetter(ctx context.Context, info DeadLetterInfo) error {
	if p.native == nil {
		return ErrNotSupported
	}
	if err := p.native(ctx, info); err != nil {
		return err
	}
	p.mu.Lock()
	p.info = info
	p.mu.Unlock()
	return p.settle(DeadLettered, 0)
}

// Outcome reports how the delivery was settled and, for Nacked, the delay
// the retry policy asked for (adapters may send it as Retry-After).
func (p *PushDelivery) Outcome() (Outcome, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outcome, p.delay
}
