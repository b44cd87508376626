package crossbus

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// RateLimiter is a token bucket that limits how fast a route takes events
// from its provider: flow control, not a queue. Tokens accrue at the
// configured rate up to the burst; a route's worker reserves up to as many
// tokens as it could receive events (waiting for at least one), receives at
// most that many, and returns the tokens it did not use. Events a route
// cannot take yet stay in the provider, so their leases do not run out while
// they wait and other consumers of the subscription can take them.
//
// The bucket keeps filling while reservations are open, so a slow Receive
// does not slow the rate down. Reserved tokens still count against the burst
// for what can be taken next: after an idle period, workers waiting in
// Receive with reservations and the refilled bucket together take at most
// twice the burst in quick succession, never more.
//
// Use WithRateLimit for a limiter of the route's own, or share one
// RateLimiter between routes that call the same downstream with
// WithRateLimiter. A shared limiter reads the clock of the first route it
// is given to (WithClock; the system clock by default). A RateLimiter is
// safe for concurrent use.
type RateLimiter struct {
	clock Clock
	rate  float64 // tokens per second
	burst int

	mu          sync.Mutex
	tokens      float64 // in the bucket (at most burst), as of last
	outstanding int     // reserved, not yet finished
	last        time.Time
	changed     chan struct{} // closed and replaced when finished reservations free tokens
	capped      int           // waiters held back by open reservations, not by time
}

// tokenEpsilon absorbs floating-point error so that a wait computed to
// produce one token does produce it.
const tokenEpsilon = 1e-9

// NewRateLimiter returns a token bucket that allows eventsPerSecond on
// average and up to burst at once, starting full.
func NewRateLimiter(eventsPerSecond float64, burst int) (*RateLimiter, error) {
	if err := validateRate(eventsPerSecond, burst); err != nil {
		return nil, err
	}
	return &RateLimiter{rate: eventsPerSecond, burst: burst, tokens: float64(burst), changed: make(chan struct{})}, nil
}

// bind gives the limiter its clock, once: the first route's.
func (l *RateLimiter) bind(c Clock) {
	l.mu.Lock()
	if l.clock == nil {
		l.clock = clockOrSystem(c)
		l.last = l.clock.Now()
	}
	l.mu.Unlock()
}

// now reads the limiter's clock (l.mu is held), binding the system clock to
// a limiter no route has used yet.
func (l *RateLimiter) now() time.Time {
	if l.clock == nil {
		l.clock = systemClock{}
		l.last = l.clock.Now()
	}
	return l.clock.Now()
}

func validateRate(eventsPerSecond float64, burst int) error {
	switch {
	case !(eventsPerSecond > 0) || math.IsInf(eventsPerSecond, 0):
		return fmt.Errorf("%w: rate limit eventsPerSecond must be a finite number > 0, got %v", ErrInvalidOption, eventsPerSecond)
	case burst < 1:
		return fmt.Errorf("%w: rate limit burst must be at least 1, got %d", ErrInvalidOption, burst)
	}
	return nil
}

// Rate returns the configured events per second.
func (l *RateLimiter) Rate() float64 { return l.rate }

// Burst returns the configured burst.
func (l *RateLimiter) Burst() int { return l.burst }

// Available returns how many whole tokens could be reserved now.
func (l *RateLimiter) Available() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(l.now())
	return int(l.takeable() + tokenEpsilon)
}

// refill adds the tokens accrued since the last refill, up to the burst;
// l.mu is held.
func (l *RateLimiter) refill(now time.Time) {
	if el := now.Sub(l.last); el > 0 {
		l.tokens = math.Min(float64(l.burst), l.tokens+el.Seconds()*l.rate)
		l.last = now
	}
}

// takeable is how many tokens may be reserved: those in the bucket, less
// any that would make reserved plus taken exceed the burst; l.mu is held.
func (l *RateLimiter) takeable() float64 {
	return math.Min(l.tokens, float64(l.burst-l.outstanding))
}

// reservation is a number of tokens taken from a RateLimiter. Finish it
// exactly once, with how many were used.
type reservation struct {
	l *RateLimiter
	n int
}

// Tokens is how many tokens were reserved.
func (r reservation) Tokens() int { return r.n }

// Finish ends the reservation: used tokens are spent, the rest return to the
// bucket.
func (r reservation) Finish(used int) {
	if r.l == nil || r.n == 0 {
		return
	}
	used = min(max(used, 0), r.n)
	l := r.l
	l.mu.Lock()
	l.refill(l.now())
	l.outstanding -= r.n
	l.tokens = math.Min(float64(l.burst), l.tokens+float64(r.n-used))
	if used < r.n || l.capped > 0 { // tokens came back, or the cap moved
		close(l.changed)
		l.changed = make(chan struct{})
	}
	l.mu.Unlock()
}

// reserve takes up to max tokens, waiting until at least one is available
// or ctx ends (then it returns ctx's error and reserves nothing).
func (l *RateLimiter) reserve(ctx context.Context, max int) (reservation, error) {
	if max < 1 {
		return reservation{}, nil
	}
	for {
		l.mu.Lock()
		l.refill(l.now())
		if l.takeable()+tokenEpsilon >= 1 {
			n := min(max, int(l.takeable()+tokenEpsilon))
			l.tokens = math.Max(0, l.tokens-float64(n))
			l.outstanding += n
			l.mu.Unlock()
			return reservation{l: l, n: n}, nil
		}
		changed := l.changed
		var wait time.Duration
		capped := l.burst-l.outstanding < 1
		if capped {
			l.capped++
		} else {
			// Time until one whole token has accrued, rounded up.
			wait = time.Duration(math.Ceil((1 - l.tokens) / l.rate * float64(time.Second)))
		}
		l.mu.Unlock()
		err := waitOrChange(ctx, l.clock, wait, changed)
		if capped {
			l.mu.Lock()
			l.capped--
			l.mu.Unlock()
		}
		if err != nil {
			return reservation{}, err
		}
	}
}

// WithRateLimit limits how fast the route takes events from the provider to
// eventsPerSecond on average, up to burst at once, with a token bucket shared
// by the route's workers (see RateLimiter). Each subscription of the route
// gets its own bucket, reading the route's clock (WithClock). The limit
// counts every event taken, including those the route's filter then skips.
// On an Endpoint the platform pushes events anyway: Deliver waits for a token
// before running the handler and nacks the delivery if the request ends
// first.
func WithRateLimit(eventsPerSecond float64, burst int) RouteOption {
	return func(c *routeConfig) error {
		if err := validateRate(eventsPerSecond, burst); err != nil {
			return err
		}
		c.rateLimit = &rateLimitConfig{rate: eventsPerSecond, burst: burst}
		return nil
	}
}

// WithRateLimiter makes the route take tokens from l, which may be shared
// with other routes (for example routes that write to the same database).
func WithRateLimiter(l *RateLimiter) RouteOption {
	return func(c *routeConfig) error {
		if l == nil {
			return errNilOption("WithRateLimiter")
		}
		c.rateLimit = &rateLimitConfig{shared: l}
		return nil
	}
}

type rateLimitConfig struct {
	rate   float64
	burst  int
	shared *RateLimiter
}

// limiter returns the subscription's bucket: the shared one, or a new one.
func (r *rateLimitConfig) limiter(c Clock) *RateLimiter {
	if r == nil {
		return nil
	}
	if r.shared != nil {
		r.shared.bind(c)
		return r.shared
	}
	l, _ := NewRateLimiter(r.rate, r.burst) // validated by the option
	l.bind(c)
	return l
}
