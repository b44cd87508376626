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
// that consumers failing together do not retry together.
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts, the first included
	// (1 = no retry). After the last one the event is dead-lettered.
	MaxAttempts int
	// InitialBackoff is the delay before the second attempt.
	InitialBackoff time.Duration
	// MaxBackoff caps every delay.
	MaxBackoff time.Duration
	// Multiplier scales the delay after each attempt (>= 1).
	Multiplier float64
	// Jitter is the fraction (0 to 1) by which a delay may be shortened at
	// random.
	Jitter float64
}

// DefaultRetryPolicy is used by routes that set none: 5 attempts, backoff
// from 1s doubling to at most 1m, 20% jitter.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.2}
}

// Validate reports the first field of p that is out of range.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("%w: RetryPolicy.MaxAttempts must be at least 1, got %d", ErrInvalidOption, p.MaxAttempts)
	case p.InitialBackoff < 0:
		return fmt.Errorf("%w: RetryPolicy.InitialBackoff must not be negative, got %v", ErrInvalidOption, p.InitialBackoff)
	case p.MaxBackoff < p.InitialBackoff:
		return fmt.Errorf("%w: RetryPolicy.MaxBackoff (%v) must be at least InitialBackoff (%v)", ErrInvalidOption, p.MaxBackoff, p.InitialBackoff)
	case p.Multiplier < 1 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		return fmt.Errorf("%w: RetryPolicy.Multiplier must be a finite number >= 1, got %v", ErrInvalidOption, p.Multiplier)
	case p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter):
		return fmt.Errorf("%w: RetryPolicy.Jitter must be between 0 and 1, got %v", ErrInvalidOption, p.Jitter)
	}
	return nil
}

// Backoff returns the delay after the given failed attempt (1-based) before
// the next one.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(attempt-1))
	if d > float64(p.MaxBackoff) || math.IsInf(d, 0) {
		d = float64(p.MaxBackoff)
	}
	if p.Jitter > 0 {
		d -= d * p.Jitter * rand.Float64()
	}
	return time.Duration(d)
}

// Exhausted reports whether attempt was the last one the policy allows.
func (p RetryPolicy) Exhausted(attempt int) bool { return attempt >= p.MaxAttempts }
