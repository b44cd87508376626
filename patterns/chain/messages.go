package chain

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/crossbus/crossbus"
)

// Event types and extensions of the chain's messages. Commands and results
// are CloudEvents; the routing facts travel as extensions so that filters
// and logs can see them without decoding the data.
const (
	// CommandType is the type of the events that ask a worker to run a step.
	CommandType = "io.crossbus.chain.command"
	// ResultType is the type of the events that report a step's outcome.
	ResultType = "io.crossbus.chain.result"

	ExtInstance = "chaininstance" // the instance id
	ExtStep     = "chainstep"     // the step name
	ExtKind     = "chainkind"     // "do" or "undo"
	ExtAttempt  = "chainattempt"  // the attempt, 1-based
	ExtDeadline = "chaindeadline" // the attempt's deadline, RFC 3339 (absent = none)
)

// Input is what a step's handler gets: the chain's input and the outputs of
// the steps completed before it.
type Input struct {
	Instance     string
	Step         string
	Attempt      int
	Compensation bool
	// Data is the chain's input, JSON.
	Data json.RawMessage
	// Outputs holds the completed steps' outputs, JSON. A compensation sees
	// the output of the step it undoes.
	Outputs map[string]json.RawMessage
}

// Decode decodes the chain's input into v.
func (in *Input) Decode(v any) error {
	if err := json.Unmarshal(in.Data, v); err != nil {
		return crossbus.Permanent(fmt.Errorf("chain: decode input of %q: %w", in.Instance, err))
	}
	return nil
}

// Output decodes an earlier step's output into v.
func (in *Input) Output(step string, v any) error {
	raw, ok := in.Outputs[step]
	if !ok {
		return crossbus.Permanent(fmt.Errorf("chain: instance %q has no output of step %q", in.Instance, step))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return crossbus.Permanent(fmt.Errorf("chain: decode output of step %q: %w", step, err))
	}
	return nil
}

type commandData struct {
	Input   json.RawMessage            `json:"input,omitempty"`
	Outputs map[string]json.RawMessage `json:"outputs,omitempty"`
}

type resultData struct {
	Output json.RawMessage `json:"output,omitempty"`
	Error  *resultError    `json:"error,omitempty"`
}

type resultError struct {
	Class   string `json:"class"`
	Message string `json:"message"`
}

// envelope is the routing part common to commands and results.
type envelope struct {
	key      StepKey
	attempt  int
	deadline time.Time
}

func (d *Definition) source() string { return "/crossbus/chains/" + d.Name }

func stamp(e *crossbus.Event, env envelope) {
	e.SetExtension(ExtInstance, env.key.Instance)
	e.SetExtension(ExtStep, env.key.Step)
	e.SetExtension(ExtKind, env.key.Kind())
	e.SetExtension(ExtAttempt, int32(env.attempt))
	if !env.deadline.IsZero() {
		e.SetExtension(ExtDeadline, env.deadline.UTC().Format(time.RFC3339Nano))
	}
	crossbus.SetPartitionKey(e, env.key.Instance)
}

func newCommand(d *Definition, inst *Instance, env envelope) (*crossbus.Event, error) {
	e := crossbus.NewEvent(CommandType, d.source())
	e.SetSubject(inst.ID)
	stamp(&e, env)
	if err := crossbus.SetData(&e, commandData{Input: inst.Input, Outputs: inst.Outputs}); err != nil {
		return nil, err
	}
	return &e, nil
}

func newResult(d *Definition, env envelope, output json.RawMessage, herr error) (*crossbus.Event, error) {
	e := crossbus.NewEvent(ResultType, d.source())
	e.SetSubject(env.key.Instance)
	stamp(&e, envelope{key: env.key, attempt: env.attempt})
	data := resultData{Output: output}
	if herr != nil {
		data.Error = &resultError{Class: ClassOf(herr), Message: herr.Error()}
	}
	if err := crossbus.SetData(&e, data); err != nil {
		return nil, err
	}
	return &e, nil
}

// readEnvelope decodes the routing extensions; a malformed one is permanent
// (the event is dead-lettered).
func readEnvelope(e *crossbus.Event) (envelope, error) {
	var env envelope
	env.key.Instance = crossbus.ExtensionString(e, ExtInstance)
	env.key.Step = crossbus.ExtensionString(e, ExtStep)
	switch k := crossbus.ExtensionString(e, ExtKind); k {
	case "do":
	case "undo":
		env.key.Compensation = true
	default:
		return env, crossbus.Permanent(fmt.Errorf("chain: event %q: extension %s is %q, want do or undo", e.ID(), ExtKind, k))
	}
	if env.key.Instance == "" || env.key.Step == "" {
		return env, crossbus.Permanent(fmt.Errorf("chain: event %q lacks the %s or %s extension", e.ID(), ExtInstance, ExtStep))
	}
	a, err := strconv.Atoi(crossbus.ExtensionString(e, ExtAttempt))
	if err != nil || a < 1 {
		return env, crossbus.Permanent(fmt.Errorf("chain: event %q: extension %s is %q, want a positive integer", e.ID(), ExtAttempt, crossbus.ExtensionString(e, ExtAttempt)))
	}
	env.attempt = a
	if s := crossbus.ExtensionString(e, ExtDeadline); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return env, crossbus.Permanent(fmt.Errorf("chain: event %q: extension %s: %w", e.ID(), ExtDeadline, err))
		}
		env.deadline = t
	}
	return env, nil
}
