package chain

import (
	"context"
	"errors"
	"fmt"

	"github.com/crossbus/crossbus"
)

// Error classes the chain assigns. Step handlers assign their own with Fail;
// RetryPolicy.NonRetryable lists the classes that are not retried.
const (
	// ClassError is the class of an error that has none of its own.
	ClassError = "chain.Error"
	// ClassTimeout: an attempt ran past the step's AttemptTimeout.
	ClassTimeout = "chain.Timeout"
	// ClassChainTimeout: the chain's total Timeout passed.
	ClassChainTimeout = "chain.ChainTimeout"
	// ClassPermanent: the error was marked crossbus.Permanent; never retried.
	ClassPermanent = "chain.Permanent"
	// ClassPanic: the handler panicked.
	ClassPanic = "chain.Panic"
)

var (
	// ErrNotFound: no instance has the id.
	ErrNotFound = errors.New("chain: instance not found")
	// ErrExists: an instance with the id already exists.
	ErrExists = errors.New("chain: instance already exists")
	// ErrStale: the instance changed since it was loaded (its revision moved).
	ErrStale = errors.New("chain: instance changed concurrently")
)

// classed is an error with an error class.
type classed struct {
	class string
	err   error
}

func (c *classed) Error() string { return c.class + ": " + c.err.Error() }
func (c *classed) Unwrap() error { return c.err }

// Fail marks err with an error class, which crosses the bus with the result
// and is matched against RetryPolicy.NonRetryable:
//
//	return nil, chain.Fail("payment.CardDeclined", err)
//
// Fail(class, nil) returns nil.
func Fail(class string, err error) error {
	if err == nil {
		return nil
	}
	return &classed{class: class, err: err}
}

// ClassOf returns err's class: the one given to Fail, ClassPermanent for
// crossbus.Permanent errors, ClassTimeout for a deadline that passed,
// ClassPanic for a recovered panic, else ClassError.
func ClassOf(err error) string {
	var c *classed
	switch {
	case errors.As(err, &c):
		return c.class
	case crossbus.IsPermanent(err):
		return ClassPermanent
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, crossbus.ErrPanic):
		return ClassPanic
	}
	return ClassError
}

// StepError is a step or compensation that failed for good, as the instance
// records it.
type StepError struct {
	Step         string `json:"step"`
	Compensation bool   `json:"compensation,omitempty"`
	Attempt      int    `json:"attempt"`
	Class        string `json:"class"`
	Message      string `json:"message"`
}

func (e StepError) Error() string {
	what := "step"
	if e.Compensation {
		what = "compensation of step"
	}
	return fmt.Sprintf("chain: %s %q failed after attempt %d: %s: %s", what, e.Step, e.Attempt, e.Class, e.Message)
}

// Is lets errors.Is match a StepError by class: errors.Is(err, chain.Class("x")).
func (e StepError) Is(target error) bool {
	c, ok := target.(classTarget)
	return ok && string(c) == e.Class
}

// classTarget matches StepErrors of one class with errors.Is.
type classTarget string

func (c classTarget) Error() string { return "chain error class " + string(c) }

// Class returns a target for errors.Is that matches the StepErrors of an
// error class: errors.Is(inst.Err(), chain.Class(chain.ClassTimeout)).
func Class(class string) error { return classTarget(class) }
