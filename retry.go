package crossbus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy decides how often and how soon a failed event is tried again.
// Backoff grows exponentially from InitialBackoff by Multiplier up to
// MaxBackoff, and each delay is randomised down by up to Jitter of itself so
// that consumers failing together do not retry together. A zero field takes
// its default (those of DefaultRetryPolicy), so RetryPolicy{MaxAttempts: 3}
// is a complete policy.
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts, the first included
	// (1 = no retry). After the last one the event is dead-lettered.
	// Default 5.
	MaxAttempts int
	// InitialBackoff is the delay before the second attempt. Default 1s;
	// NoBackoff retries without a pause.
	InitialBackoff time.Duration
	// MaxBackoff caps every delay. Default 1m, or InitialBackoff when that
	// is longer.
	MaxBackoff time.Duration
	// Multiplier scales the delay after each attempt (>= 1). Default 2.
	Multiplier float64
	// Jitter is the fraction (0 to 1) by which a delay may be shortened at
	// random. Default 0.2; NoJitter turns it off.
	Jitter float64
}

// Values of RetryPolicy fields that turn a default off.
const (
	// NoBackoff as RetryPolicy.InitialBackoff retries at once (with
	// MaxBackoff left zero, every retry is immediate).
	NoBackoff time.Duration = -1
	// NoJitter as RetryPolicy.Jitter makes every delay exact.
	NoJitter = -1.0
)

// withDefaults fills the zero fields of p. It is idempotent: NoBackoff and
// NoJitter stay as they are (Backoff reads them as zero).
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff == 0 && p.InitialBackoff > 0 {
		p.MaxBackoff = max(d.MaxBackoff, p.InitialBackoff)
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	if p.Jitter == 0 {
		p.Jitter = d.Jitter
	}
	return p
}

// DefaultRetryPolicy is used by routes that set none: 5 attempts, backoff
// from 1s doubling to at most 1m, 20% jitter.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.2}
}

// Validate reports the first field of p that is out of range, once the zero
// fields took their defaults.
func (p RetryPolicy) Validate() error {
	p = p.withDefaults()
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("%w: RetryPolicy.MaxAttempts must be at least 1, got %d", ErrInvalidOption, p.MaxAttempts)
	case p.InitialBackoff < 0 && p.InitialBackoff != NoBackoff:
		return fmt.Errorf("%w: RetryPolicy.InitialBackoff must not be negative, got %v", ErrInvalidOption, p.InitialBackoff)
	case p.MaxBackoff < p.InitialBackoff:
		return fmt.Errorf("%w: RetryPolicy.MaxBackoff (%v) must be at least InitialBackoff (%v)", ErrInvalidOption, p.MaxBackoff, p.InitialBackoff)
	case p.Multiplier < 1 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		return fmt.Errorf("%w: RetryPolicy.Multiplier must be a finite number >= 1, got %v", ErrInvalidOption, p.Multiplier)
	case p.Jitter < 0 && p.Jitter != NoJitter || p.Jitter > 1 || math.IsNaN(p.Jitter):
		return fmt.Errorf("%w: RetryPolicy.Jitter must be between 0 and 1, got %v", ErrInvalidOption, p.Jitter)
	}
	return nil
}

// Backoff returns the delay after the given failed attempt (1-based) before
// the next one.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	d := float64(max(p.InitialBackoff, 0)) * math.Pow(p.Multiplier, float64(attempt-1))
	if d > float64(p.MaxBackoff) || math.IsInf(d, 0) {
		d = float64(p.MaxBackoff)
	}
	if p.Jitter > 0 { // NoJitter is negative
		d -= d * p.Jitter * rand.Float64()
	}
	return time.Duration(d)
}

// Exhausted reports whether attempt was the last one the policy allows.
func (p RetryPolicy) Exhausted(attempt int) bool { return attempt >= p.withDefaults().MaxAttempts }
