package crossbus

import (
	"context"
	"fmt"
	"time"
)

// BatchHandler handles events in batches: one call for many events, where
// one database round trip or one API call can do the work of hundreds. The
// result is per event, so one bad event never fails the batch: return nil
// when every event succeeded, or a slice with one entry per event, in order
// — nil for an event that succeeded (acked), an error for one that failed
// (retried by the route's retry policy, or dead-lettered when the error is
// Permanent or the attempts are exhausted). For a failure that hits every
// event (the downstream is down), fill a slice with the same error. A result slice of
// the wrong length fails every event; a panic fails every event.
//
// The events must not be modified or kept after HandleBatch returns. The
// context carries DeliveryInfo whose Attempt is the highest attempt in the
// batch.
type BatchHandler interface {
	HandleBatch(ctx context.Context, events []*Event) []error
}

// BatchHandlerFunc adapts a function to a BatchHandler.
type BatchHandlerFunc func(ctx context.Context, events []*Event) []error

// HandleBatch calls f.
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, events []*Event) []error {
	return f(ctx, events)
}

// Batch defaults for batch routes that do not set WithBatch.
const (
	// DefaultBatchCount is the default largest batch.
	DefaultBatchCount = 100
	// DefaultBatchWait is the default longest wait after a batch's first
	// event.
	DefaultBatchWait = time.Second
)

type batchConfig struct {
	maxCount int
	maxWait  time.Duration
}

// WithBatch bounds the batches of a batch route: a batch is handed to the
// handler once it holds maxCount events or maxWait has passed since its
// first event arrived, whichever comes first (defaults DefaultBatchCount and
// DefaultBatchWait). maxWait 0 takes what the provider has at once. Leases
// of the events in a forming, waiting or running batch are extended (where
// the provider can) so that long waits do not cause redeliveries; keep
// maxWait well below the provider's maximum lease where it cannot.
//
// WithConcurrency on a batch route bounds how many batches are handled at
// once (default 8); the route forms one batch at a time, so at most
// concurrency+1 batches are held. WithPrefetch does not apply. With
// WithRateLimit a batch fills no faster than the limit allows.
func WithBatch(maxCount int, maxWait time.Duration) RouteOption {
	return func(c *routeConfig) error {
		if maxCount < 1 {
			return fmt.Errorf("%w: batch maxCount must be at least 1, got %d", ErrInvalidOption, maxCount)
		}
		if maxWait < 0 {
			return fmt.Errorf("%w: batch maxWait must not be negative, got %v", ErrInvalidOption, maxWait)
		}
		c.batch = &batchConfig{maxCount: maxCount, maxWait: maxWait}
		return nil
	}
}

// HandleBatch adds a batch route: h handles the events of subscription on
// topic in batches (WithBatch; defaults DefaultBatchCount events or
// DefaultBatchWait). Retries, dead-lettering, the filter, idempotency
// (claims are taken per event before the batch runs), rate limiting and the
// circuit breaker apply as on other routes. Per-event middleware, the
// router's (Use) and the route's (WithMiddleware), cannot wrap a batch
// handler: the router's is not applied, and WithMiddleware is refused, as is
// WithOrdering.
func (r *Router) HandleBatch(topic, subscription string, h BatchHandler, opts ...RouteOption) error {
	if h == nil {
		return fmt.Errorf("%w: nil batch handler for subscription %q", ErrInvalidOption, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(true)
	}
	if err != nil {
		return fmt.Errorf("route %q: %w", subscription, err)
	}
	cfg.batchHandler = h
	return r.add(topic, subscription, nil, cfg)
}

// SubscribeBatch starts consuming subscription of topic with a batch
// handler; see Router.HandleBatch.
func (b *Bus) SubscribeBatch(ctx context.Context, topic, subscription string, h BatchHandler, opts ...RouteOption) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil batch handler for subscription %q", ErrInvalidOption, subscription)
	}
	if topic == "" || subscription == "" {
		return nil, fmt.Errorf("%w: subscribe needs a topic and a subscription name (got %q, %q)", ErrInvalidOption, topic, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(true)
	}
	if err != nil {
		return nil, fmt.Errorf("subscription %q: %w", subscription, err)
	}
	cfg.batchHandler = h
	return b.subscribe(ctx, topic, subscription, nil, cfg)
}

// NewBatchEndpoint returns an Endpoint that runs a batch handler for pushed
// batches (Endpoint.DeliverBatch), for example a Lambda SQS trigger with
// partial batch responses. Options are those of Router.HandleBatch.
func (b *Bus) NewBatchEndpoint(topic, subscription string, h BatchHandler, opts ...RouteOption) (*Endpoint, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil batch handler for endpoint %q", ErrInvalidOption, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(true)
	}
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", subscription, err)
	}
	cfg.batchHandler = h
	return b.newEndpoint(topic, subscription, nil, cfg)
}
