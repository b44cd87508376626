package crossbus

import (
	"context"
	"time"

	"github.com/crossbus/crossbus/internal/publishhook"
	"go.opentelemetry.io/otel/propagation"
)

// TestBreaker exposes the circuit breaker's state machine to the external
// tests, which drive it with a fake clock.
type TestBreaker struct{ b *breaker }

// TestPermit is a breaker admission.
type TestPermit struct{ p breakerPermit }

// Probe reports whether the permit is a half-open probe.
func (p TestPermit) Probe() bool { return p.p.probe }

func NewTestBreaker(p BreakerPolicy, c Clock, onChange func(BreakerStateChange)) (*TestBreaker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &TestBreaker{newBreaker(p, c, "topic", "sub", onChange)}, nil
}

func (t *TestBreaker) State() BreakerState { return t.b.State() }

func (t *TestBreaker) Admit(ctx context.Context) (TestPermit, error) {
	p, err := t.b.admit(ctx)
	return TestPermit{p}, err
}

func (t *TestBreaker) AdmitNow() (TestPermit, time.Duration, bool) {
	p, d, ok := t.b.admitNow()
	return TestPermit{p}, d, ok
}

func (t *TestBreaker) ReceiveBudget(ctx context.Context, max int) (int, error) {
	return t.b.receiveBudget(ctx, max)
}

// Record reports one handler call's error (nil for success).
func (t *TestBreaker) Record(p TestPermit, err error) {
	failed, counted := t.b.classify(err)
	switch {
	case !counted:
		t.b.record(p.p, 0, 0)
	case failed:
		t.b.record(p.p, 0, 1)
	default:
		t.b.record(p.p, 1, 0)
	}
}

// RecordCounts reports a batch call's outcomes.
func (t *TestBreaker) RecordCounts(p TestPermit, ok, failed int) { t.b.record(p.p, ok, failed) }

// WithDeliveryInfo returns ctx carrying info, for tests that call handlers
// outside a subscription.
func WithDeliveryInfo(ctx context.Context, info DeliveryInfo) context.Context {
	return &deliveryContext{Context: ctx, info: info}
}

// ExtractTraceContext returns ctx carrying the remote span context stamped on
// the event, for tests.
func ExtractTraceContext(ctx context.Context, e *Event) context.Context {
	return propagation.TraceContext{}.Extract(ctx, eventCarrier{e})
}

// Reserve exposes RateLimiter.reserve to the external tests.
func (l *RateLimiter) Reserve(ctx context.Context, max int) (TestReservation, error) {
	r, err := l.reserve(ctx, max)
	return TestReservation{r}, err
}

// TestReservation is a reservation, for the external tests.
type TestReservation struct{ r reservation }

func (r TestReservation) Tokens() int     { return r.r.Tokens() }
func (r TestReservation) Finish(used int) { r.r.Finish(used) }

// NewTestRateLimiter is NewRateLimiter on a given clock.
func NewTestRateLimiter(eventsPerSecond float64, burst int, c Clock) (*RateLimiter, error) {
	l, err := NewRateLimiter(eventsPerSecond, burst)
	if err == nil {
		l.bind(c)
	}
	return l, err
}

// WithAfterPublish installs an after-publish hook, for the external tests
// (packages install theirs through internal/publishhook).
func WithAfterPublish(hook func(ctx context.Context, topic string, events []*Event)) BusOption {
	return func(b *Bus) error {
		if hook == nil {
			return errNilOption("WithAfterPublish")
		}
		return publishhook.Install(b, hook)
	}
}
