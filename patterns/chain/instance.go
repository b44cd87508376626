package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Status is where an instance stands.
type Status string

const (
	// StatusRunning: steps are running.
	StatusRunning Status = "running"
	// StatusCompensating: a step failed for good; compensations are running.
	StatusCompensating Status = "compensating"
	// StatusCompleted: every step succeeded.
	StatusCompleted Status = "completed"
	// StatusCompensated: a step failed and every completed step was
	// compensated.
	StatusCompensated Status = "compensated"
	// StatusCompensationFailed: a step failed and at least one compensation
	// failed for good; the errors say which.
	StatusCompensationFailed Status = "compensation_failed"
)

// Finished reports whether the instance will not change any more.
func (s Status) Finished() bool {
	return s == StatusCompleted || s == StatusCompensated || s == StatusCompensationFailed
}

// Phase is the state of the current attempt.
type Phase string

const (
	// PhaseWaiting: the attempt is sent at Due (a retry's backoff, or a
	// dispatch that failed and is tried again).
	PhaseWaiting Phase = "waiting"
	// PhaseDispatched: the attempt was sent; Due is its deadline (zero when
	// the step has no AttemptTimeout).
	PhaseDispatched Phase = "dispatched"
)

// Instance is one run of a chain, as the Store keeps it.
type Instance struct {
	ID     string `json:"id"`
	Chain  string `json:"chain"`
	Status Status `json:"status"`
	// Input is the chain's input, JSON.
	Input json.RawMessage `json:"input,omitempty"`
	// Outputs holds each completed step's output, JSON.
	Outputs map[string]json.RawMessage `json:"outputs,omitempty"`
	// Completed lists the completed steps in order.
	Completed []string `json:"completed,omitempty"`
	// Step is the running step, or the step being compensated ("" once
	// finished).
	Step    string `json:"step,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Phase   Phase  `json:"phase,omitempty"`
	// Due is when a waiting attempt is sent, or when a dispatched one times
	// out.
	Due time.Time `json:"due,omitzero"`
	// Deadline is when the chain's total timeout passes (zero = none).
	Deadline time.Time `json:"deadline,omitzero"`
	// Undo is the index in Completed of the step being compensated.
	Undo int `json:"undo,omitempty"`
	// Errors lists the step that failed for good and every compensation
	// that failed for good.
	Errors   []StepError `json:"errors,omitempty"`
	Created  time.Time   `json:"created"`
	Updated  time.Time   `json:"updated"`
	Revision int64       `json:"revision"`
}

// Err joins the instance's errors (nil when there are none).
func (i *Instance) Err() error {
	errs := make([]error, len(i.Errors))
	for n, e := range i.Errors {
		errs[n] = e
	}
	return errors.Join(errs...)
}

// Output decodes a completed step's output into v.
func (i *Instance) Output(step string, v any) error {
	raw, ok := i.Outputs[step]
	if !ok {
		return fmt.Errorf("chain: instance %q has no output of step %q", i.ID, step)
	}
	return json.Unmarshal(raw, v)
}

// Clone returns a deep copy.
func (i *Instance) Clone() *Instance {
	c := *i
	c.Input = append(json.RawMessage(nil), i.Input...)
	if i.Outputs != nil {
		c.Outputs = make(map[string]json.RawMessage, len(i.Outputs))
		for k, v := range i.Outputs {
			c.Outputs[k] = append(json.RawMessage(nil), v...)
		}
	}
	c.Completed = append([]string(nil), i.Completed...)
	c.Errors = append([]StepError(nil), i.Errors...)
	return &c
}

// wake is when the coordinator must look at the instance again (zero =
// only when a result arrives).
func (i *Instance) wake() time.Time {
	if i.Status.Finished() {
		return time.Time{}
	}
	w := time.Time{}
	if i.Phase == PhaseWaiting || !i.Due.IsZero() {
		w = i.Due
	}
	if i.Status == StatusRunning && !i.Deadline.IsZero() && (w.IsZero() || i.Deadline.Before(w)) {
		w = i.Deadline
	}
	return w
}
