package crossbus

import (
	"context"
	"errors"
	"sync"
)

// Router holds routes — a topic's subscription, a handler and its options —
// and runs them together. A route's pipeline has a fixed order, whatever the
// order of registration: retry and dead-lettering outermost, then panic
// recovery, then the filter and idempotency, then the route's timeout, then
// the router's middleware (Use), then the route's own (WithMiddleware), then
// the handler.
type Router struct {
	bus      *Bus
	defaults []RouteOption

	mu      sync.Mutex
	mw      []Middleware
	routes  []*route
	names   map[string]bool
	running bool
	ready   chan struct{} // closed once Run has opened every subscription, or failed
	err     error         // why the last Run failed
}

type route struct {
	topic, subscription string
	handler             Handler // nil for batch routes (cfg.batchHandler)
	cfg                 routeConfig
	sub                 *Subscription // while the router runs
	stats               *routeStats   // live counters, kept across runs
}

// NewRouter returns a Router that consumes from bus. Options given here are
// defaults for every route; a route's own options come after them and win.
func NewRouter(bus *Bus, defaults ...RouteOption) (*Router, error) {
	if bus == nil {
		return nil, errorf("%w: NewRouter needs a bus, got nil", ErrInvalidOption)
	}
	if _, err := buildRouteConfig(defaults); err != nil {
		return nil, errorf("router defaults: %w", err)
	}
	return &Router{bus: bus, defaults: defaults, names: map[string]bool{}, ready: make(chan struct{})}, nil
}

// Ready is closed once Run has opened every route's subscription, so events
// published after it are received — or once Run failed; Err tells which.
//
//	go r.Run(ctx)
//	<-r.Ready()
//	if err := r.Err(); err != nil { ... }
func (r *Router) Ready() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// Err reports why the router's last Run stopped for a reason other than its
// context: a route that could not be opened, a subscription stopped by an
// error the provider reported (a deleted subscription, refused
// credentials), or the bus being closed (ErrClosed). It is nil while Run
// works and after Run returned because its context ended.
func (r *Router) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Use adds middleware around every route's handler. Call it before Run.
// Batch routes (HandleBatch) are not wrapped: their handler takes a batch.
// A nil middleware is refused.
func (r *Router) Use(mw ...Middleware) error {
	for i, m := range mw {
		if m == nil {
			return errorf("%w: Use: middleware %d is nil", ErrInvalidOption, i)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return errorf("%w: Use called while the router runs", ErrInvalidOption)
	}
	r.mw = append(r.mw, mw...)
	return nil
}

// Handle adds a route: h handles the events of subscription on topic. Each
// route has its own subscription, so one route's failures never block or
// repeat another's (fan-out). Invalid options and names are reported here.
func (r *Router) Handle(topic, subscription string, h Handler, opts ...RouteOption) error {
	if h == nil {
		return errorf("%w: nil handler for subscription %q", ErrInvalidOption, subscription)
	}
	cfg, err := buildRouteConfig(append(r.defaults[:len(r.defaults):len(r.defaults)], opts...))
	if err == nil {
		err = cfg.checkKind(false)
	}
	if err != nil {
		return errorf("route %q: %w", subscription, err)
	}
	return r.add(topic, subscription, h, cfg)
}

func (r *Router) add(topic, subscription string, h Handler, cfg routeConfig) error {
	if err := checkNames(topic, subscription); err != nil {
		return errorf("route %q: %w", subscription, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return errorf("%w: route %q added while the router runs", ErrInvalidOption, subscription)
	}
	key := topic + "\x00" + subscription
	if r.names[key] {
		return errorf("%w: route for subscription %q of topic %q already exists", ErrInvalidOption, subscription, topic)
	}
	r.names[key] = true
	r.routes = append(r.routes, &route{topic: topic, subscription: subscription, handler: h, cfg: cfg, stats: &routeStats{}})
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

// Run subscribes every route and blocks until ctx is done, the bus is
// closed, or a route's subscription stops on an error the provider reported
// (a deleted subscription, refused credentials). Then it stops every route:
// receiving stops, unstarted events go back to the provider, and running
// handlers drain, each route up to its drain timeout; handlers still running
// then are abandoned (see Subscription.Close). Run returns nil after a clean
// drain that its context started; otherwise the error says why it stopped
// (wrapping ErrClosed when the bus closed, the provider's error when a
// route failed) joined with any abandoned handlers (ErrHandlersAbandoned).
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errorf("%w: router already running", ErrInvalidOption)
	}
	if len(r.routes) == 0 {
		r.mu.Unlock()
		return errorf("%w: router has no routes", ErrInvalidOption)
	}
	r.running = true
	r.err = nil
	select {
	case <-r.ready: // a previous Run's signal: signal afresh
		r.ready = make(chan struct{})
	default:
	}
	routes := append([]*route(nil), r.routes...)
	mw := append([]Middleware(nil), r.mw...)
	ready := r.ready
	r.mu.Unlock()

	subs := make([]*Subscription, 0, len(routes))
	var cause error
	for _, rt := range routes {
		cfg := rt.cfg
		cfg.stats = rt.stats
		if cfg.batchHandler == nil { // per-event middleware cannot wrap a batch handler
			cfg.middleware = append(append([]Middleware(nil), mw...), cfg.middleware...)
		}
		s, err := r.bus.subscribe(ctx, rt.topic, rt.subscription, rt.handler, cfg)
		if err != nil {
			cause = errorf("router: %w", err)
			break
		}
		subs = append(subs, s)
		r.mu.Lock()
		rt.sub = s
		r.mu.Unlock()
	}
	if cause == nil {
		close(ready)
		cause = r.wait(ctx, subs)
	}
	err := errors.Join(cause, closeAll(context.WithoutCancel(ctx), subs))
	r.mu.Lock()
	r.running = false
	for _, rt := range routes {
		rt.sub = nil
	}
	r.err = cause
	r.mu.Unlock()
	if cause != nil {
		select {
		case <-ready:
		default:
			close(ready) // failed before every route opened
		}
	}
	return err
}

// wait blocks until ctx is done (nil), the bus closes (ErrClosed) or a
// subscription stops on its own (its error).
func (r *Router) wait(ctx context.Context, subs []*Subscription) error {
	stopped := make(chan *Subscription, len(subs))
	quit := make(chan struct{})
	defer close(quit)
	for _, s := range subs {
		go func() {
			select {
			case <-s.stopped:
				stopped <- s
			case <-quit:
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case <-r.bus.closing:
		return errorf("router: %w", ErrClosed)
	case s := <-stopped:
		if err := s.Err(); err != nil {
			return errorf("router: %w", err)
		}
		return errorf("router: subscription %q closed: %w", s.name, ErrClosed)
	}
}

// closeAll closes subscriptions in parallel.
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
