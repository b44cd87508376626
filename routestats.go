package crossbus

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"

	"github.com/crossbus/crossbus/topology"
)

// ExtTargetSubscription, set on an event, limits it to one subscription: the
// portable layer acks it unhandled on every other subscription of the topic.
// Operations tools set it to redrive a dead letter to the subscription that
// gave up on it, or to replay archived events to one subscription only.
const extTargetSubscription = "targetsubscription"

// accepts reports whether the subscription handles e: the route's filter
// matches, and the event is not meant for another subscription only.
func (s *Subscription) accepts(e *Event) bool {
	if v, ok := extension(e, extTargetSubscription); ok {
		if name, isStr := v.(string); !isStr || name != s.name {
			return false
		}
	}
	return s.cfg.filter == nil || s.filteredNatively || s.cfg.filter.Match(e)
}

// routeStats are a route's live counters, kept across the router's runs.
type routeStats struct {
	handled, failed, retried, deadLettered, batchInFlight atomic.Int64
}

func (st *routeStats) outcome(err error) {
	if err == nil {
		st.handled.Add(1)
	} else {
		st.failed.Add(1)
	}
}

// lagReporter is implemented by receivers that can tell how many events
// wait in their subscription.
type lagReporter interface {
	Lag(ctx context.Context) (int64, error)
}

// Counters returns the live counters of every route, in the order they were
// added: events handled, failed attempts, retries, dead letters, handlers
// running, and the subscription's backlog where the provider reports it.
func (r *Router) Counters(ctx context.Context) []topology.Counters {
	r.mu.Lock()
	routes := append([]*route(nil), r.routes...)
	subs := make([]*Subscription, len(routes))
	for i, rt := range routes {
		subs[i] = rt.sub
	}
	r.mu.Unlock()
	out := make([]topology.Counters, len(routes))
	for i, rt := range routes {
		st := rt.stats
		c := topology.Counters{Topic: rt.topic, Subscription: rt.subscription, Running: subs[i] != nil,
			Handled: st.handled.Load(), Failed: st.failed.Load(), Retried: st.retried.Load(),
			DeadLettered: st.deadLettered.Load(), InFlight: st.batchInFlight.Load()}
		if s := subs[i]; s != nil {
			c.InFlight += s.running.Load()
			if lr, ok := s.recv.(lagReporter); ok {
				if n, err := lr.Lag(ctx); err == nil {
					c.Lag = &n
				}
			}
		}
		out[i] = c
	}
	return out
}

// Topology describes every route of the router: topic, subscription,
// handler, filter, retry policy, dead-letter target, ordering, concurrency
// and load controls (see package topology for JSON, Mermaid and DOT).
func (r *Router) Topology() topology.Topology {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := topology.Topology{Routes: make([]topology.Route, 0, len(r.routes))}
	for _, rt := range r.routes {
		c := rt.cfg
		tr := topology.Route{Topic: rt.topic, Subscription: rt.subscription, Batch: c.batchHandler != nil,
			Filter: patternOf(c.filter), DeadLetterTopic: c.deadLetterTopic, Ordered: c.ordered,
			Concurrency: c.concurrency, Prefetch: c.prefetch, Idempotent: c.idem != nil,
			Retry: topology.Retry{MaxAttempts: c.retry.MaxAttempts, InitialBackoff: c.retry.InitialBackoff.String(),
				MaxBackoff: c.retry.MaxBackoff.String(), Multiplier: c.retry.Multiplier, Jitter: c.retry.Jitter}}
		tr.FilterFunc = c.filter != nil && tr.Filter == ""
		if c.timeout > 0 {
			tr.Timeout = c.timeout.String()
		}
		if c.batchHandler != nil {
			tr.Handler = handlerName(c.batchHandler)
			if c.batch != nil {
				tr.BatchSize = &topology.BatchSize{MaxCount: c.batch.maxCount, MaxWait: c.batch.maxWait.String()}
			}
		} else {
			tr.Handler = handlerName(rt.handler)
		}
		if rl := c.rateLimit; rl != nil {
			if rl.shared != nil {
				tr.RateLimit = &topology.RateLimit{EventsPerSecond: rl.shared.rate, Burst: rl.shared.burst, Shared: true}
			} else {
				tr.RateLimit = &topology.RateLimit{EventsPerSecond: rl.rate, Burst: rl.burst}
			}
		}
		if bp := c.breaker; bp != nil {
			tr.Breaker = &topology.Breaker{ConsecutiveFailures: bp.ConsecutiveFailures, FailureRate: bp.FailureRate,
				MinRequests: bp.MinRequests, Window: bp.Window.String(), OpenFor: bp.OpenFor.String()}
			if rt.sub != nil && rt.sub.breaker != nil {
				tr.Breaker.State = rt.sub.breaker.State().String()
			}
		}
		t.Routes = append(t.Routes, tr)
	}
	return t
}

// handlerName is the function behind a handler, as the runtime names it.
func handlerName(h any) string {
	if n, ok := h.(interface{ funcValue() any }); ok {
		h = n.funcValue()
	}
	v := reflect.ValueOf(h)
	if v.Kind() == reflect.Func && !v.IsNil() {
		if f := runtime.FuncForPC(v.Pointer()); f != nil {
			return f.Name()
		}
	}
	return fmt.Sprintf("%T", h)
}
