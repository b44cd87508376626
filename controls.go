package crossbus

import (
	"context"
	"errors"
	"log/slog"

	"github.com/crossbus/crossbus/driver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// This file wires the load controls (rate limiter, circuit breaker) into a
// subscription's delivery engine: the rate limiter and the breaker are
// consulted before Receive, so they govern how fast events leave the
// provider; the breaker is consulted again before each handler call.

// errBreakerOpen is the span error of a delivery the breaker kept from
// running (returned to the provider at shutdown, or nacked on an Endpoint).
var errBreakerOpen = errors.New("crossbus: circuit breaker open")

// initControls builds the subscription's clock, rate limiter and breaker
// from its route configuration.
func (s *Subscription) initControls() {
	s.clock = clockOrSystem(s.cfg.clock)
	s.limiter = s.cfg.rateLimit.limiter(s.clock)
	if p := s.cfg.breaker; p != nil {
		transitions, _ := s.bus.tel.mp.Meter(instrumentationName).Int64Counter("crossbus.breaker.transitions",
			metric.WithDescription("Circuit breaker state changes, by the state entered."), metric.WithUnit("{transition}"))
		onChange := p.OnStateChange
		base := []attribute.KeyValue{s.bus.tel.system, attribute.String("messaging.destination.name", s.topic),
			attribute.String("messaging.consumer.group.name", s.name)}
		s.breaker = newBreaker(*p, s.clock, s.topic, s.name, func(c BreakerStateChange) {
			level := slog.LevelInfo
			if c.To == BreakerOpen {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "crossbus: circuit breaker "+c.To.String(),
				"subscription", s.name, "topic", s.topic, "from", c.From.String(), "reason", c.Reason)
			attrs := attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), attribute.String("state", c.To.String()))...)
			transitions.Add(context.Background(), 1, metric.WithAttributeSet(attrs))
			if onChange != nil {
				onChange(c)
			}
		})
	}
}

// BreakerState returns the state of the subscription's circuit breaker
// (BreakerClosed when it has none).
func (s *Subscription) BreakerState() BreakerState {
	if s.breaker == nil {
		return BreakerClosed
	}
	return s.breaker.State()
}

// receiveGated receives into buf as the load controls allow: it waits while
// the breaker is open, takes no more than the breaker's budget (the free
// probe slots when half-open) and the rate limiter's tokens, and returns
// unused tokens. It returns 0 once ctx ends.
func (s *Subscription) receiveGated(ctx context.Context, buf []driver.Delivery) int {
	n := len(buf)
	if s.breaker != nil {
		var err error
		if n, err = s.breaker.receiveBudget(ctx, n); err != nil {
			return 0
		}
	}
	if s.limiter == nil {
		return s.receiveCtx(ctx, buf[:n])
	}
	r, err := s.limiter.reserve(ctx, n)
	if err != nil {
		return 0
	}
	got := s.receiveCtx(ctx, buf[:r.Tokens()])
	r.Finish(got)
	return got
}

// admit waits until the breaker lets a handler call for ds (one event, or a
// batch) start. Pulled deliveries wait (their leases extended) and are
// returned to the provider only if the subscription stops meanwhile; pushed
// ones cannot wait and are nacked with the rest of the open period as their
// delay. It reports whether the handler may run.
func (s *Subscription) admit(ds ...driver.Delivery) (breakerPermit, bool) {
	if s.breaker == nil {
		return breakerPermit{}, true
	}
	if s.push {
		p, wait, ok := s.breaker.admitNow()
		if !ok {
			for _, d := range ds {
				s.nack(d, wait)
			}
		}
		return p, ok
	}
	p, err := s.breaker.admit(s.recvCtx)
	if err != nil {
		s.returnAll(ds) // stopping: leave them to the provider
		return p, false
	}
	return p, true
}

// recordOutcome tells the breaker how a handler call it admitted went.
func (s *Subscription) recordOutcome(ctx context.Context, p breakerPermit, err error) {
	if s.breaker == nil {
		return
	}
	if err != nil && ctx.Err() != nil { // cancelled by shutdown: says nothing
		s.breaker.record(p, 0, 0)
		return
	}
	failed, counted := s.breaker.classify(err)
	switch {
	case !counted:
		s.breaker.record(p, 0, 0)
	case failed:
		s.breaker.record(p, 0, 1)
	default:
		s.breaker.record(p, 1, 0)
	}
}

// pushRateLimit waits for a token for each of n pushed events; it reports
// false when ctx ended first.
func (s *Subscription) pushRateLimit(ctx context.Context, n int) bool {
	if s.limiter == nil {
		return true
	}
	for n > 0 {
		r, err := s.limiter.reserve(ctx, n)
		if err != nil {
			return false
		}
		r.Finish(r.Tokens())
		n -= r.Tokens()
	}
	return true
}
