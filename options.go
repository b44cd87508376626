package crossbus

import (
	"fmt"
	"time"
)

// RouteOption configures a route or a subscription. An out-of-range value is
// reported (wrapping ErrInvalidOption) when the route is added, not later.
type RouteOption func(*routeConfig) error

type routeConfig struct {
	concurrency     int
	ordered         bool
	retry           RetryPolicy
	deadLetterTopic string
	ackDeadline     time.Duration
	prefetch        int
	drainTimeout    time.Duration
	filter          Filter
	idem            *idempotencyConfig
	middleware      []Middleware
	timeout         time.Duration

	// load controls (clock.go, ratelimit.go, breaker.go, batch.go)
	clock        Clock
	rateLimit    *rateLimitConfig
	breaker      *BreakerPolicy
	batch        *batchConfig
	batchHandler BatchHandler // set by HandleBatch, SubscribeBatch, NewBatchEndpoint

	stats *routeStats // the route's counters (routestats.go); nil: the subscription's own
}

func defaultRouteConfig() routeConfig {
	return routeConfig{concurrency: 8, retry: DefaultRetryPolicy(), prefetch: 8, drainTimeout: 30 * time.Second}
}

func buildRouteConfig(opts []RouteOption) (routeConfig, error) {
	c := defaultRouteConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkKind reports options that do not fit the kind of handler: WithBatch
// needs a batch handler; a batch handler cannot be ordered or wrapped in
// per-event middleware.
func (c *routeConfig) checkKind(batch bool) error {
	if !batch {
		if c.batch != nil {
			return fmt.Errorf("%w: WithBatch needs a batch handler (Router.HandleBatch, Bus.SubscribeBatch, Bus.NewBatchEndpoint)", ErrInvalidOption)
		}
		return nil
	}
	if c.ordered {
		return fmt.Errorf("%w: WithOrdering cannot be combined with a batch handler: a batch would mix keys and a failed event would let later events of its key overtake it; use Handle with WithOrdering", ErrInvalidOption)
	}
	if len(c.middleware) > 0 {
		return fmt.Errorf("%w: WithMiddleware wraps per-event handlers and cannot wrap a batch handler", ErrInvalidOption)
	}
	if c.batch == nil {
		c.batch = &batchConfig{maxCount: DefaultBatchCount, maxWait: DefaultBatchWait}
	}
	return nil
}

// WithConcurrency sets how many handlers of the route may run at once
// (default 8). n must be at least 1.
func WithConcurrency(n int) RouteOption {
	return func(c *routeConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: concurrency must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithOrdering makes the route handle events with the same partition key one at
// a time in publish order (parallel across keys). A failed event is retried in
// place, so no later event of its key overtakes it.
func WithOrdering() RouteOption {
	return func(c *routeConfig) error { c.ordered = true; return nil }
}

// WithRetry sets the route's retry policy (default DefaultRetryPolicy).
func WithRetry(p RetryPolicy) RouteOption {
	return func(c *routeConfig) error {
		if err := p.Validate(); err != nil {
			return err
		}
		c.retry = p.withDefaults()
		return nil
	}
}

// WithDeadLetterTopic sets the topic that receives events the route gave up on,
// for providers without a native dead-letter queue (on providers with one it
// is used only if the native queue refuses).
func WithDeadLetterTopic(topic string) RouteOption {
	return func(c *routeConfig) error {
		if err := ValidateName(topic); err != nil {
			return fmt.Errorf("dead-letter topic: %w", err)
		}
		c.deadLetterTopic = topic
		return nil
	}
}

// WithAckDeadline sets the lease a delivery gets; leases are extended while a
// handler runs on providers that support it. Default: the provider's.
func WithAckDeadline(d time.Duration) RouteOption {
	return func(c *routeConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: ack deadline must be positive, got %v", ErrInvalidOption, d)
		}
		c.ackDeadline = d
		return nil
	}
}

// WithPrefetch sets how many deliveries each worker takes from the provider
// at once (default 8). Larger values raise throughput for fast handlers.
func WithPrefetch(n int) RouteOption {
	return func(c *routeConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: prefetch must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.prefetch = n
		return nil
	}
}

// WithDrainTimeout bounds how long closing waits for in-flight handlers when
// the caller's context has no deadline (default 30s).
func WithDrainTimeout(d time.Duration) RouteOption {
	return func(c *routeConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: drain timeout must be positive, got %v", ErrInvalidOption, d)
		}
		c.drainTimeout = d
		return nil
	}
}

// WithFilter makes the route handle only events the filter matches; others
// are acknowledged without running the handler.
func WithFilter(f Filter) RouteOption {
	return func(c *routeConfig) error {
		if f == nil {
			return fmt.Errorf("%w: nil filter", ErrInvalidOption)
		}
		if ep, ok := f.(*EventPattern); ok && ep.err != nil {
			return fmt.Errorf("filter: %w", ep.err)
		}
		c.filter = f
		return nil
	}
}

// WithTimeout bounds each attempt of the route's handler (with the route's
// middleware) to d: the handler's context gets a deadline d from the start of
// the attempt, and an attempt that fails after it wraps
// context.DeadlineExceeded and is retried by the retry policy. Retries get a
// fresh deadline. A handler that ignores its context cannot be stopped; it
// holds its worker until it returns, and at shutdown it is abandoned at the
// drain deadline (see Subscription.Close).
func WithTimeout(d time.Duration) RouteOption {
	return func(c *routeConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithTimeout(%v): the timeout must be positive", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithMiddleware adds middleware around this route's handler, inside the
// router's own middleware.
func WithMiddleware(mw ...Middleware) RouteOption {
	return func(c *routeConfig) error {
		for i, m := range mw {
			if m == nil {
				return fmt.Errorf("%w: middleware %d is nil", ErrInvalidOption, i)
			}
		}
		c.middleware = append(c.middleware, mw...)
		return nil
	}
}
