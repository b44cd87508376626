package crossbus

import (
	"context"
	"time"
)

// Clock tells the time and makes timers for crossbus's load controls: the
// rate limiter, the circuit breaker, batch waits, the batching publisher's
// linger, the resequencer's gap timeout and in-place retry delays. The
// default is the system clock; tests inject a fake one (package clocktest) so that
// time-dependent behaviour runs deterministically, without sleeping.
//
// Provider-side time is not affected: delivery leases, delayed redelivery and
// lease extension follow the provider's real clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that sends the time on its channel once d
	// has passed (at once when d <= 0).
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f once d has passed and returns a timer that can stop
	// it; the returned timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a Clock's timer, shaped like *time.Timer.
type Timer interface {
	// C delivers the time when the timer fires (nil for AfterFunc timers).
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped
	// a pending timer.
	Stop() bool
	// Reset makes the timer fire after d; it reports whether the timer
	// was pending.
	Reset(d time.Duration) bool
}

// systemClock is the real clock (package time).
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer {
	return systemTimer{time.AfterFunc(d, f)}
}

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// clockOrSystem returns c, or the system clock when c is nil.
func clockOrSystem(c Clock) Clock {
	if c == nil {
		return systemClock{}
	}
	return c
}

// sleepCtx waits d on c or until ctx ends; it reports whether the whole
// delay passed.
func sleepCtx(ctx context.Context, c Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// withClockDeadline returns a context that ends when parent does or when d
// has passed on c, whichever comes first. The cancel function releases the
// timer.
func withClockDeadline(parent context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	if d <= 0 {
		cancel()
		return ctx, cancel
	}
	t := c.AfterFunc(d, cancel)
	return ctx, func() {
		t.Stop()
		cancel()
	}
}

// WithClock sets the clock the route's load controls use: rate limiting,
// circuit breaking, batch waits and in-place retry delays (default
// the system clock). Tests pass a clocktest.Clock to drive them deterministically.
func WithClock(c Clock) RouteOption {
	return func(cfg *routeConfig) error {
		if c == nil {
			return errNilOption("WithClock")
		}
		cfg.clock = c
		return nil
	}
}

// waitOrChange blocks for d on clock (forever when d is 0) or until changed
// closes or ctx ends.
func waitOrChange(ctx context.Context, clock Clock, d time.Duration, changed <-chan struct{}) error {
	var tc <-chan time.Time
	if d > 0 {
		t := clock.NewTimer(d)
		defer t.Stop()
		tc = t.C()
	}
	select {
	case <-tc:
		return nil
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
