package chain

import (
	"encoding/json"
	"fmt"
	"time"
)

// The transitions of an instance. Each changes inst in place and returns the
// command to send once the change is saved (nil for none). They run under
// the instance's lock, on a freshly loaded copy.

// dispatch marks the current attempt sent and returns its envelope.
func (d *Definition) dispatch(inst *Instance, now time.Time) *envelope {
	step, _, _ := d.step(inst.Step)
	inst.Phase = PhaseDispatched
	inst.Due = time.Time{}
	if step.AttemptTimeout > 0 {
		inst.Due = now.Add(step.AttemptTimeout)
	}
	deadline := inst.Due
	if inst.Status == StatusRunning && !inst.Deadline.IsZero() && (deadline.IsZero() || inst.Deadline.Before(deadline)) {
		deadline = inst.Deadline
	}
	return &envelope{key: StepKey{Instance: inst.ID, Step: inst.Step, Compensation: inst.Status == StatusCompensating},
		attempt: inst.Attempt, deadline: deadline}
}

func (d *Definition) startStep(inst *Instance, idx int, now time.Time) *envelope {
	inst.Step = d.Steps[idx].Name
	inst.Attempt = 1
	return d.dispatch(inst, now)
}

func finish(inst *Instance, status Status) *envelope {
	inst.Status = status
	inst.Step, inst.Attempt, inst.Phase, inst.Due, inst.Undo = "", 0, "", time.Time{}, 0
	return nil
}

// succeeded records the current step's output and moves to the next step.
func (d *Definition) succeeded(inst *Instance, output json.RawMessage, now time.Time) *envelope {
	if inst.Outputs == nil {
		inst.Outputs = map[string]json.RawMessage{}
	}
	if len(output) == 0 {
		output = json.RawMessage("null")
	}
	inst.Outputs[inst.Step] = output
	inst.Completed = append(inst.Completed, inst.Step)
	_, idx, _ := d.step(inst.Step)
	if idx+1 >= len(d.Steps) {
		return finish(inst, StatusCompleted)
	}
	return d.startStep(inst, idx+1, now)
}

// retryOrGiveUp schedules the next attempt when the policy allows one (and
// a running chain's deadline leaves room for it) and reports whether it did.
func (d *Definition) retryOrGiveUp(inst *Instance, class string, now time.Time) bool {
	step, _, _ := d.step(inst.Step)
	if !step.Retry.Retries(class, inst.Attempt) {
		return false
	}
	due := now.Add(step.Retry.Delay(inst.Attempt))
	if inst.Status == StatusRunning && !inst.Deadline.IsZero() && !due.Before(inst.Deadline) {
		return false
	}
	inst.Attempt++
	inst.Phase = PhaseWaiting
	inst.Due = due
	return true
}

// attemptFailed handles a failed attempt of a step.
func (d *Definition) attemptFailed(inst *Instance, class, msg string, now time.Time) *envelope {
	if d.retryOrGiveUp(inst, class, now) {
		return nil
	}
	return d.failed(inst, class, msg, now)
}

// failed records that the current step failed for good and starts the
// compensations.
func (d *Definition) failed(inst *Instance, class, msg string, now time.Time) *envelope {
	inst.Errors = append(inst.Errors, StepError{Step: inst.Step, Attempt: inst.Attempt, Class: class, Message: msg})
	inst.Status = StatusCompensating
	inst.Undo = len(inst.Completed)
	return d.nextUndo(inst, now)
}

// nextUndo moves to the compensation of the completed step before the
// current one, or finishes.
func (d *Definition) nextUndo(inst *Instance, now time.Time) *envelope {
	inst.Undo--
	if inst.Undo < 0 {
		for _, e := range inst.Errors {
			if e.Compensation {
				return finish(inst, StatusCompensationFailed)
			}
		}
		return finish(inst, StatusCompensated)
	}
	inst.Step = inst.Completed[inst.Undo]
	inst.Attempt = 1
	return d.dispatch(inst, now)
}

// undoFailed handles a failed attempt of a compensation.
func (d *Definition) undoFailed(inst *Instance, class, msg string, now time.Time) *envelope {
	if d.retryOrGiveUp(inst, class, now) {
		return nil
	}
	inst.Errors = append(inst.Errors, StepError{Step: inst.Step, Compensation: true, Attempt: inst.Attempt, Class: class, Message: msg})
	return d.nextUndo(inst, now)
}

// onResult applies a step result; changed is false when the result is stale
// (a duplicate, a late failure, or for a step no longer current).
func (d *Definition) onResult(inst *Instance, env envelope, res resultData, now time.Time) (changed bool, cmd *envelope) {
	if inst.Status.Finished() || inst.Step != env.key.Step {
		return false, nil
	}
	wantStatus := StatusRunning
	if env.key.Compensation {
		wantStatus = StatusCompensating
	}
	if inst.Status != wantStatus {
		return false, nil
	}
	if res.Error == nil {
		// A success counts whichever attempt it answers: the step ran.
		if env.key.Compensation {
			return true, d.nextUndo(inst, now)
		}
		return true, d.succeeded(inst, res.Output, now)
	}
	if env.attempt != inst.Attempt || inst.Phase != PhaseDispatched {
		return false, nil // an earlier attempt's failure, already counted
	}
	if env.key.Compensation {
		return true, d.undoFailed(inst, res.Error.Class, res.Error.Message, now)
	}
	return true, d.attemptFailed(inst, res.Error.Class, res.Error.Message, now)
}

// onTimer applies what is due at now: the chain's deadline, a retry's time,
// or an attempt's timeout.
func (d *Definition) onTimer(inst *Instance, now time.Time) (changed bool, cmd *envelope) {
	switch {
	case inst.Status.Finished():
		return false, nil
	case inst.Status == StatusRunning && !inst.Deadline.IsZero() && !now.Before(inst.Deadline):
		return true, d.failed(inst, ClassChainTimeout, fmt.Sprintf("chain %q timed out after %v", d.Name, d.Timeout), now)
	case inst.Phase == PhaseWaiting && !now.Before(inst.Due):
		return true, d.dispatch(inst, now)
	case inst.Phase == PhaseDispatched && !inst.Due.IsZero() && !now.Before(inst.Due):
		step, _, _ := d.step(inst.Step)
		msg := fmt.Sprintf("attempt %d got no result within %v", inst.Attempt, step.AttemptTimeout)
		if inst.Status == StatusCompensating {
			return true, d.undoFailed(inst, ClassTimeout, msg, now)
		}
		return true, d.attemptFailed(inst, ClassTimeout, msg, now)
	}
	return false, nil
}
