package crossbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Router holds routes — a topic's subscription, a handler and its options —
// and runs them together. A route's pipeline has a fixed order, whatever the
// order of registration: retry and dead-lettering outermost, then panic
// recovery, then the filter and idempotency, then the router's middleware (Use),
// then the route's own (WithMiddleware), then the handler.
type Router struct {
	bus *Bus

	mu      sync.Mutex
	mw      []Middleware
	routes  []*route
	names   map[string]bool
	running bool
	ready   chan struct{} // closed once Run has opened every subscription
}

type route struct {
	topic, subscription string
	handler             Handler // nil for batch routes (cfg.batchHandler)
	cfg                 routeConfig
	sub                 *Subscription // while the router runs
}

// NewRouter returns a Router that consumes from bus.
func NewRouter(bus *Bus) *Router {
	return &Router{bus: bus, names: map[string]bool{}, ready: make(chan struct{})}
}

// Ready is closed once Run has opened every route's subscription, so events
// published after it are received.
func (r *Router) Ready() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// Use adds middleware around every route's handler. Call it before Run.
// Batch routes (HandleBatch) are not wrapped: their handler takes a batch.
func (r *Router) Use(mw ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mw = append(r.mw, mw...)
}

// Handle adds a route: h handles the events of subscription on topic. Each
// route has its own subscription, so one route's failures never block or
// repeat another's (fan-out). Invalid options are reported here.
func (r *Router) Handle(topic, subscription string, h Handler, opts ...RouteOption) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler for subscription %q", ErrInvalidOption, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(false)
	}
	if err != nil {
		return fmt.Errorf("route %q: %w", subscription, err)
	}
	return r.add(topic, subscription, h, cfg)
}

func (r *Router) add(topic, subscription string, h Handler, cfg routeConfig) error {
	if topic == "" || subscription == "" {
		return fmt.Errorf("%w: a route needs a topic and a subscription name (got %q, %q)", ErrInvalidOption, topic, subscription)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return fmt.Errorf("crossbus: route %q added while the router runs", subscription)
	}
	key := topic + "\x00" + subscription
	if r.names[key] {
		return fmt.Errorf("%w: route for subscription %q of topic %q already exists", ErrInvalidOption, subscription, topic)
	}
	r.names[key] = true
	r.routes = append(r.routes, &route{topic: topic, subscription: subscription, handler: h, cfg: cfg})
	return nil
}

// BreakerState returns the state of the circuit breaker of a running route,
// and false when the route is unknown, not running, or has no breaker.
func (r *Router) BreakerState(topic, subscription string) (BreakerState, bool) {
	r.mu.Lock()
	var s *Subscription
	for _, rt := range r.routes {
		if rt.topic == topic && rt.subscription == subscription {
			s = rt.sub
		}
	}
	r.mu.Unlock()
	if s == nil || s.breaker == nil {
		return BreakerClosed, false
	}
	return s.breaker.State(), true
}

// Run subscribes every route and blocks until ctx is done; then it stops
// receiving, drains in-flight handlers (each route's drain timeout) and
// returns. Events not handled by then stay with the provider for redelivery.
// It returns nil after a clean drain.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("crossbus: router already running")
	}
	if len(r.routes) == 0 {
		r.mu.Unlock()
		return fmt.Errorf("%w: router has no routes", ErrInvalidOption)
	}
	r.running = true
	routes := append([]*route(nil), r.routes...)
	mw := append([]Middleware(nil), r.mw...)
	ready := r.ready
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.ready = make(chan struct{}) // a later Run signals afresh
		for _, rt := range routes {
			rt.sub = nil
		}
		r.mu.Unlock()
	}()

	subs := make([]*Subscription, 0, len(routes))
	for _, rt := range routes {
		cfg := rt.cfg
		if cfg.batchHandler == nil { // per-event middleware cannot wrap a batch handler
			cfg.middleware = append(append([]Middleware(nil), mw...), cfg.middleware...)
		}
		s, err := r.bus.subscribe(ctx, rt.topic, rt.subscription, rt.handler, cfg)
		if err != nil {
			closeAll(context.WithoutCancel(ctx), subs)
			return fmt.Errorf("crossbus: router: %w", err)
		}
		subs = append(subs, s)
		r.mu.Lock()
		rt.sub = s
		r.mu.Unlock()
	}
	close(ready)
	<-ctx.Done()
	return closeAll(context.WithoutCancel(ctx), subs)
}

// closeAll drains subscriptions in parallel.
func closeAll(ctx context.Context, subs []*Subscription) error {
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Close(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
