package chain

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
)

// Definition describes a chain: its steps in order, their policies and the
// topics its events travel on. The Coordinator and every Worker of a chain
// use the same Definition.
type Definition struct {
	// Name identifies the chain; instances record it.
	Name  string
	Steps []Step
	// Timeout bounds a whole instance, from Begin to its last step
	// (0 = none). When it passes, the running step is abandoned and the
	// completed steps are compensated. Compensations are not bounded by it.
	Timeout time.Duration
	// ResultTopic carries step results to the Coordinator (default
	// Name + "-results").
	ResultTopic string
	// DeadLetterTopic receives commands and results that cannot be handled
	// (undecodable, or failing in the store or bus beyond the subscription's
	// retries), on providers without a native dead-letter queue.
	DeadLetterTopic string
}

// Step is one step of a chain.
type Step struct {
	Name string
	// Topic carries the step's commands (default chain name + "-" + step name).
	Topic string
	// Retry is the step's retry policy; compensations use it too.
	Retry RetryPolicy
	// AttemptTimeout bounds each attempt (0 = none). The worker's handler
	// gets a context with this deadline; when the Coordinator has no result
	// by then, the attempt failed with ClassTimeout.
	AttemptTimeout time.Duration
}

// RetryPolicy says how a step's failed attempts are retried. Zero fields take
// the defaults noted on each.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, the first included (default 3;
	// 1 means no retry).
	MaxAttempts int
	// InitialInterval is the delay before the second attempt (default 1s).
	InitialInterval time.Duration
	// BackoffRate multiplies the delay after each attempt (default 2).
	BackoffRate float64
	// MaxDelay caps every delay (default 1m).
	MaxDelay time.Duration
	// Jitter is the fraction (0-1) by which a delay may be shortened at
	// random (default 0).
	Jitter float64
	// NonRetryable lists error classes that fail the step at once.
	// ClassPermanent is always non-retryable.
	NonRetryable []string
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 3
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = time.Second
	}
	if p.BackoffRate == 0 {
		p.BackoffRate = 2
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = time.Minute
	}
	return p
}

func (p RetryPolicy) validate(step string) error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("%w: step %q: Retry.MaxAttempts must not be negative, got %d", crossbus.ErrInvalidOption, step, p.MaxAttempts)
	case p.InitialInterval < 0 || p.MaxDelay < 0:
		return fmt.Errorf("%w: step %q: Retry intervals must not be negative", crossbus.ErrInvalidOption, step)
	case p.BackoffRate != 0 && (p.BackoffRate < 1 || math.IsNaN(p.BackoffRate) || math.IsInf(p.BackoffRate, 0)):
		return fmt.Errorf("%w: step %q: Retry.BackoffRate must be a finite number >= 1, got %v", crossbus.ErrInvalidOption, step, p.BackoffRate)
	case p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter):
		return fmt.Errorf("%w: step %q: Retry.Jitter must be between 0 and 1, got %v", crossbus.ErrInvalidOption, step, p.Jitter)
	}
	return nil
}

// Delay returns how long to wait after failed attempt n (1-based) before the
// next one.
func (p RetryPolicy) Delay(n int) time.Duration {
	p = p.withDefaults()
	d := float64(p.InitialInterval) * math.Pow(p.BackoffRate, float64(max(n, 1)-1))
	if d > float64(p.MaxDelay) || math.IsInf(d, 0) {
		d = float64(p.MaxDelay)
	}
	if p.Jitter > 0 {
		d -= d * p.Jitter * rand.Float64()
	}
	return time.Duration(d)
}

// Retries reports whether a failure of class after attempt n is tried again.
func (p RetryPolicy) Retries(class string, n int) bool {
	p = p.withDefaults()
	if class == ClassPermanent || slices.Contains(p.NonRetryable, class) {
		return false
	}
	return n < p.MaxAttempts
}

// Validate reports the first problem of the definition: names missing or
// repeated, or a policy out of range.
func (d *Definition) Validate() error {
	if d.Name == "" {
		return fmt.Errorf("%w: chain definition has no Name", crossbus.ErrInvalidOption)
	}
	if len(d.Steps) == 0 {
		return fmt.Errorf("%w: chain %q has no steps", crossbus.ErrInvalidOption, d.Name)
	}
	if d.Timeout < 0 {
		return fmt.Errorf("%w: chain %q: Timeout must not be negative", crossbus.ErrInvalidOption, d.Name)
	}
	seen := map[string]bool{}
	for i, s := range d.Steps {
		if s.Name == "" {
			return fmt.Errorf("%w: chain %q: step %d has no Name", crossbus.ErrInvalidOption, d.Name, i)
		}
		if strings.ContainsRune(s.Name, 0) {
			return fmt.Errorf("%w: chain %q: step name %q contains a NUL byte", crossbus.ErrInvalidOption, d.Name, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: chain %q: step %q appears twice", crossbus.ErrInvalidOption, d.Name, s.Name)
		}
		seen[s.Name] = true
		if s.AttemptTimeout < 0 {
			return fmt.Errorf("%w: chain %q: step %q: AttemptTimeout must not be negative", crossbus.ErrInvalidOption, d.Name, s.Name)
		}
		if err := s.Retry.validate(s.Name); err != nil {
			return err
		}
	}
	return nil
}

// step returns the step named name and its index.
func (d *Definition) step(name string) (Step, int, bool) {
	for i, s := range d.Steps {
		if s.Name == name {
			return s, i, true
		}
	}
	return Step{}, -1, false
}

// StepTopic returns the topic of a step's commands.
func (d *Definition) StepTopic(s Step) string {
	if s.Topic != "" {
		return s.Topic
	}
	return d.Name + "-" + s.Name
}

// ResultsTopic returns the topic of step results.
func (d *Definition) ResultsTopic() string {
	if d.ResultTopic != "" {
		return d.ResultTopic
	}
	return d.Name + "-results"
}
