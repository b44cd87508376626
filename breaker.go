package crossbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// BreakerState is the state of a route's circuit breaker.
type BreakerState int

const (
	// BreakerClosed: events flow normally.
	BreakerClosed BreakerState = iota
	// BreakerOpen: the downstream is failing; the route takes no events
	// from the provider and starts no handler until the open period ends.
	BreakerOpen
	// BreakerHalfOpen: a few probe handler calls test the downstream; the
	// breaker closes when they succeed and opens again when one fails.
	BreakerHalfOpen
)

// String returns the state's name.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// BreakerPolicy configures a route's circuit breaker (WithCircuitBreaker).
// Set ConsecutiveFailures, FailureRate or both; zero values of the other
// fields take the documented defaults.
//
// Outcomes are counted per event (a batch handler's call yields one outcome
// per event). A handler error counts as a failure unless IsFailure says
// otherwise; by default every error does except permanent ones (Permanent,
// ErrInvalidData), which show the downstream answered and count as successes,
// and ErrInProgress (a duplicate: nothing was called), which counts as
// neither. A handler cancelled by shutdown counts as neither.
type BreakerPolicy struct {
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row (0: not used).
	ConsecutiveFailures int
	// FailureRate opens the breaker when the share of failures among the
	// outcomes of the last Window reaches it, once there were at least
	// MinRequests outcomes (0: not used; else in (0, 1]).
	FailureRate float64
	// MinRequests is the fewest outcomes in Window for FailureRate to apply
	// (default 10).
	MinRequests int
	// Window is the rolling window FailureRate looks at (default 1m).
	Window time.Duration
	// OpenFor is how long the breaker stays open before it lets probes
	// through (default 30s).
	OpenFor time.Duration
	// HalfOpenProbes is how many probe handler calls must succeed in the
	// half-open state to close the breaker (default 1). Probes run one at
	// a time per free slot: at most HalfOpenProbes at once. On a batch
	// route a probe is one batch.
	HalfOpenProbes int
	// IsFailure, when set, decides which handler errors count as failures
	// (the others count as successes).
	IsFailure func(err error) bool
	// OnStateChange, when set, is called after each state change, one call
	// at a time and in order. It must not block for long.
	OnStateChange func(BreakerStateChange)
}

// BreakerStateChange describes one transition of a route's breaker.
type BreakerStateChange struct {
	Topic        string
	Subscription string
	From, To     BreakerState
	Reason       string    // why, in words ("5 consecutive failures", ...)
	Time         time.Time // by the route's clock
}

// Validate reports the first field of p that is out of range.
func (p BreakerPolicy) Validate() error {
	switch {
	case p.ConsecutiveFailures < 0:
		return fmt.Errorf("%w: BreakerPolicy.ConsecutiveFailures must not be negative, got %d", ErrInvalidOption, p.ConsecutiveFailures)
	case p.FailureRate < 0 || p.FailureRate > 1 || math.IsNaN(p.FailureRate):
		return fmt.Errorf("%w: BreakerPolicy.FailureRate must be between 0 and 1, got %v", ErrInvalidOption, p.FailureRate)
	case p.ConsecutiveFailures == 0 && p.FailureRate == 0:
		return fmt.Errorf("%w: BreakerPolicy needs ConsecutiveFailures or FailureRate to open", ErrInvalidOption)
	case p.MinRequests < 0:
		return fmt.Errorf("%w: BreakerPolicy.MinRequests must not be negative, got %d", ErrInvalidOption, p.MinRequests)
	case p.Window < 0:
		return fmt.Errorf("%w: BreakerPolicy.Window must not be negative, got %v", ErrInvalidOption, p.Window)
	case p.OpenFor < 0:
		return fmt.Errorf("%w: BreakerPolicy.OpenFor must not be negative, got %v", ErrInvalidOption, p.OpenFor)
	case p.HalfOpenProbes < 0:
		return fmt.Errorf("%w: BreakerPolicy.HalfOpenProbes must not be negative, got %d", ErrInvalidOption, p.HalfOpenProbes)
	}
	return nil
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	if p.MinRequests == 0 {
		p.MinRequests = 10
	}
	if p.Window == 0 {
		p.Window = time.Minute
	}
	if p.OpenFor == 0 {
		p.OpenFor = 30 * time.Second
	}
	if p.HalfOpenProbes == 0 {
		p.HalfOpenProbes = 1
	}
	return p
}

// WithCircuitBreaker protects the route's downstream: when its handler keeps
// failing the breaker opens, and while it is open the route takes no events
// from the provider and starts no handler. Events already received wait,
// their leases extended, instead of being nacked, so no retry attempt is
// spent and nothing is lost; events not yet received stay in the provider.
// After OpenFor the breaker lets HalfOpenProbes handler calls through, closes
// when they succeed and opens again when one fails. State changes are logged
// through the bus's logger, counted in the crossbus.breaker.transitions
// metric, passed to OnStateChange, and readable with
// Subscription.BreakerState or Router.BreakerState.
//
// On an Endpoint the platform pushes events anyway: while the breaker is open
// Deliver nacks them without running the handler, with the rest of the open
// period as the retry delay; the platform's delivery count does advance.
func WithCircuitBreaker(p BreakerPolicy) RouteOption {
	return func(c *routeConfig) error {
		if err := p.Validate(); err != nil {
			return err
		}
		p = p.withDefaults()
		c.breaker = &p
		return nil
	}
}

// breakerPermit lets one handler call (an event or a batch) run; it is
// handed back to record with the call's outcome.
type breakerPermit struct {
	gen   uint64 // the breaker generation it was granted in
	probe bool
}

// breaker is a route's circuit breaker.
type breaker struct {
	p      BreakerPolicy
	clock  Clock
	topic  string
	sub    string
	notify func(BreakerStateChange)

	mu          sync.Mutex
	state       BreakerState
	gen         uint64 // bumped on every transition: stale outcomes are ignored
	openUntil   time.Time
	consecutive int
	win         rollingWindow
	probesOut   int // probes running
	probesOK    int // probes succeeded in this half-open period
	changed     chan struct{}
	pending     []BreakerStateChange // notifications not yet delivered
	notifying   bool
}

func newBreaker(p BreakerPolicy, c Clock, topic, sub string, notify func(BreakerStateChange)) *breaker {
	p = p.withDefaults()
	return &breaker{p: p, clock: clockOrSystem(c), topic: topic, sub: sub, notify: notify,
		win: rollingWindow{width: max(p.Window/windowBuckets, 1)}, changed: make(chan struct{})}
}

// State returns the breaker's state.
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	b.tick(b.clock.Now())
	st := b.state
	b.mu.Unlock()
	b.deliver()
	return st
}

// tick moves an open breaker whose open period has passed to half-open;
// b.mu is held.
func (b *breaker) tick(now time.Time) {
	if b.state == BreakerOpen && !now.Before(b.openUntil) {
		b.transition(BreakerHalfOpen, fmt.Sprintf("open for %v", b.p.OpenFor), now)
	}
}

// transition changes state and queues the notification; b.mu is held.
func (b *breaker) transition(to BreakerState, reason string, now time.Time) {
	from := b.state
	b.state = to
	b.gen++
	b.consecutive, b.probesOut, b.probesOK = 0, 0, 0
	b.win.reset()
	if to == BreakerOpen {
		b.openUntil = now.Add(b.p.OpenFor)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	b.pending = append(b.pending, BreakerStateChange{Topic: b.topic, Subscription: b.sub, From: from, To: to, Reason: reason, Time: now})
}

// deliver calls notify for queued state changes, one at a time and in
// order, outside b.mu (so notify may read the state).
func (b *breaker) deliver() {
	b.mu.Lock()
	if b.notifying || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	for len(b.pending) > 0 {
		c := b.pending[0]
		b.pending = b.pending[1:]
		b.mu.Unlock()
		if b.notify != nil {
			b.notify(c)
		}
		b.mu.Lock()
	}
	b.pending = nil
	b.notifying = false
	b.mu.Unlock()
}

// tryAdmit grants a permit now, or says how long to wait (0: until the state
// changes); b.mu is held.
func (b *breaker) tryAdmit(now time.Time) (breakerPermit, time.Duration, bool) {
	b.tick(now)
	switch b.state {
	case BreakerClosed:
		return breakerPermit{gen: b.gen}, 0, true
	case BreakerOpen:
		return breakerPermit{}, b.openUntil.Sub(now), false
	}
	if b.probesOut+b.probesOK < b.p.HalfOpenProbes {
		b.probesOut++
		return breakerPermit{gen: b.gen, probe: true}, 0, true
	}
	return breakerPermit{}, 0, false
}

// admit waits until a handler call may start, or until ctx ends.
func (b *breaker) admit(ctx context.Context) (breakerPermit, error) {
	for {
		b.mu.Lock()
		p, wait, ok := b.tryAdmit(b.clock.Now())
		changed := b.changed
		b.mu.Unlock()
		b.deliver()
		if ok {
			return p, nil
		}
		if err := waitOrChange(ctx, b.clock, wait, changed); err != nil {
			return breakerPermit{}, err
		}
	}
}

// admitNow grants a permit without waiting, or returns how long until one
// might be granted (for push deliveries, which cannot wait).
func (b *breaker) admitNow() (breakerPermit, time.Duration, bool) {
	b.mu.Lock()
	p, wait, ok := b.tryAdmit(b.clock.Now())
	b.mu.Unlock()
	b.deliver()
	if !ok && wait <= 0 {
		wait = max(b.p.OpenFor/10, time.Second) // half-open, probes busy
	}
	return p, wait, ok
}

// receiveBudget waits while the breaker is open (or half-open with every
// probe running) and returns how many events a worker may take: max when
// closed, the free probe slots when half-open.
func (b *breaker) receiveBudget(ctx context.Context, max int) (int, error) {
	for {
		b.mu.Lock()
		b.tick(b.clock.Now())
		var n int
		var wait time.Duration
		switch b.state {
		case BreakerClosed:
			n = max
		case BreakerOpen:
			wait = b.openUntil.Sub(b.clock.Now())
		case BreakerHalfOpen:
			n = min(max, b.p.HalfOpenProbes-b.probesOut-b.probesOK)
		}
		changed := b.changed
		b.mu.Unlock()
		b.deliver()
		if n > 0 {
			return n, nil
		}
		if err := waitOrChange(ctx, b.clock, wait, changed); err != nil {
			return 0, err
		}
	}
}

// waitNotOpen waits while the breaker is open.
func (b *breaker) waitNotOpen(ctx context.Context) error {
	for {
		b.mu.Lock()
		b.tick(b.clock.Now())
		open, wait := b.state == BreakerOpen, b.openUntil.Sub(b.clock.Now())
		changed := b.changed
		b.mu.Unlock()
		b.deliver()
		if !open {
			return nil
		}
		if err := waitOrChange(ctx, b.clock, wait, changed); err != nil {
			return err
		}
	}
}

// classify sorts a handler error into a success or a failure; counted is
// false for outcomes that say nothing about the downstream.
func (b *breaker) classify(err error) (failed, counted bool) {
	switch {
	case err == nil:
		return false, true
	case errors.Is(err, ErrInProgress):
		return false, false
	case b.p.IsFailure != nil:
		return b.p.IsFailure(err), true
	}
	return !IsPermanent(err), true
}

// record reports the outcome of the call p admitted: ok successes and
// failed failures (both 0 when nothing was learned).
func (b *breaker) record(p breakerPermit, ok, failed int) {
	b.mu.Lock()
	now := b.clock.Now()
	b.tick(now)
	if p.gen != b.gen {
		// Granted before the last transition: its outcome describes the
		// past and the counters it would touch were reset.
		b.mu.Unlock()
		b.deliver()
		return
	}
	switch {
	case p.probe:
		b.probesOut--
		switch {
		case failed > 0:
			b.transition(BreakerOpen, "probe failed", now)
		case ok > 0:
			b.probesOK++
			if b.probesOK >= b.p.HalfOpenProbes {
				b.transition(BreakerClosed, fmt.Sprintf("%d probe(s) succeeded", b.probesOK), now)
			}
		default: // nothing learned: free the slot for another probe
			close(b.changed)
			b.changed = make(chan struct{})
		}
	case b.state == BreakerClosed:
		b.countClosed(now, ok, failed)
	}
	b.mu.Unlock()
	b.deliver()
}

// countClosed counts outcomes while closed and opens on a threshold; b.mu
// is held.
func (b *breaker) countClosed(now time.Time, ok, failed int) {
	if ok == 0 && failed == 0 {
		return
	}
	switch {
	case failed == 0:
		b.consecutive = 0
	case ok > 0:
		b.consecutive = failed
	default:
		b.consecutive += failed
	}
	b.win.add(now, ok, failed)
	if n := b.p.ConsecutiveFailures; n > 0 && b.consecutive >= n {
		b.transition(BreakerOpen, fmt.Sprintf("%d consecutive failures", b.consecutive), now)
		return
	}
	if b.p.FailureRate > 0 {
		okN, failN := b.win.totals(now)
		if total := okN + failN; total >= b.p.MinRequests && total > 0 && float64(failN)/float64(total) >= b.p.FailureRate {
			b.transition(BreakerOpen, fmt.Sprintf("%d of %d failed in %v", failN, total, b.p.Window), now)
		}
	}
}

// windowBuckets is the resolution of the failure-rate window.
const windowBuckets = 10

// rollingWindow counts outcomes over the last windowBuckets × width.
type rollingWindow struct {
	width   time.Duration
	buckets [windowBuckets]struct {
		epoch      int64
		ok, failed int
	}
}

func (w *rollingWindow) epoch(now time.Time) int64 { return now.UnixNano() / int64(w.width) }

func (w *rollingWindow) add(now time.Time, ok, failed int) {
	e := w.epoch(now)
	b := &w.buckets[((e%windowBuckets)+windowBuckets)%windowBuckets]
	if b.epoch != e {
		b.epoch, b.ok, b.failed = e, 0, 0
	}
	b.ok += ok
	b.failed += failed
}

func (w *rollingWindow) totals(now time.Time) (ok, failed int) {
	e := w.epoch(now)
	for _, b := range w.buckets {
		if b.epoch > e-windowBuckets && b.epoch <= e {
			ok += b.ok
			failed += b.failed
		}
	}
	return ok, failed
}

func (w *rollingWindow) reset() {
	for i := range w.buckets {
		w.buckets[i].ok, w.buckets[i].failed = 0, 0
	}
}
