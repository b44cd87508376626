package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
)

// Handler is a step's code: Do runs the step and returns its output
// (encoded as JSON); Undo, if set, compensates a completed step. Both may
// run in any process that has a Worker for the chain. Return Fail(class, err)
// to give an error a class the retry policy can name, or
// crossbus.Permanent(err) for an error no retry can fix.
type Handler struct {
	Do   func(ctx context.Context, in *Input) (any, error)
	Undo func(ctx context.Context, in *Input) error
}

// WorkerOptions configure a Worker. The zero value is valid.
type WorkerOptions struct {
	// Lease is how long a step claim survives a worker that died while
	// running the step; then another worker may run it. Make it longer than
	// the slowest attempt (default 5m, or twice the longest AttemptTimeout).
	Lease time.Duration
	// Subscription names the subscription of a step's commands (default
	// step topic + "-worker"). Workers of one step in several processes
	// share it and split the commands.
	Subscription func(step string) string
	// RouteOptions configure the step subscriptions (concurrency, the retry
	// of store or bus failures, dead-lettering).
	RouteOptions []crossbus.RouteOption
	// Logger receives what is not returned to a caller (default: discard).
	Logger *slog.Logger
}

// Worker runs the steps of a chain that this process has handlers for: it
// consumes their commands, runs each (instance, step) once (see the package
// documentation) and publishes the results.
type Worker struct {
	def      *Definition
	bus      Bus
	store    Store
	handlers map[string]Handler
	opts     WorkerOptions
	log      *slog.Logger

	mu   sync.Mutex
	subs []*crossbus.Subscription
}

// NewWorker returns a worker for the steps of def named in handlers.
func NewWorker(def *Definition, bus Bus, store Store, handlers map[string]Handler, opts WorkerOptions) (*Worker, error) {
	if def == nil || bus == nil || store == nil {
		return nil, fmt.Errorf("%w: NewWorker needs a definition, a bus and a store", crossbus.ErrInvalidOption)
	}
	if err := def.Validate(); err != nil {
		return nil, err
	}
	if len(handlers) == 0 {
		return nil, fmt.Errorf("%w: chain %q: worker has no handlers", crossbus.ErrInvalidOption, def.Name)
	}
	for name, h := range handlers {
		if _, _, ok := def.step(name); !ok {
			return nil, fmt.Errorf("%w: chain %q has no step %q", crossbus.ErrInvalidOption, def.Name, name)
		}
		if h.Do == nil {
			return nil, fmt.Errorf("%w: chain %q: step %q has no Do func", crossbus.ErrInvalidOption, def.Name, name)
		}
	}
	if opts.Lease < 0 {
		return nil, fmt.Errorf("%w: Lease must not be negative", crossbus.ErrInvalidOption)
	}
	if opts.Lease == 0 {
		opts.Lease = 5 * time.Minute
		for _, s := range def.Steps {
			opts.Lease = max(opts.Lease, 2*s.AttemptTimeout)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{def: def, bus: bus, store: store, handlers: handlers, opts: opts, log: log}, nil
}

// Start subscribes to the commands of every handled step and returns once
// they are being received.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.subs != nil {
		return errors.New("chain: worker already started")
	}
	for _, step := range w.def.Steps {
		h, ok := w.handlers[step.Name]
		if !ok {
			continue
		}
		topic := w.def.StepTopic(step)
		name := topic + "-worker"
		if w.opts.Subscription != nil {
			name = w.opts.Subscription(step.Name)
		}
		opts := w.opts.RouteOptions
		if w.def.DeadLetterTopic != "" {
			opts = append([]crossbus.RouteOption{crossbus.WithDeadLetterTopic(w.def.DeadLetterTopic)}, opts...)
		}
		sub, err := w.bus.Subscribe(ctx, topic, name, crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			return w.handle(ctx, step, h, e)
		}), opts...)
		if err != nil {
			for _, s := range w.subs {
				_ = s.Close(ctx)
			}
			w.subs = nil
			return fmt.Errorf("chain %q: subscribe to step %q: %w", w.def.Name, step.Name, err)
		}
		w.subs = append(w.subs, sub)
	}
	return nil
}

// Close stops the step subscriptions, draining running steps until ctx ends.
func (w *Worker) Close(ctx context.Context) error {
	w.mu.Lock()
	subs := w.subs
	w.subs = nil
	w.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}

// handle runs one command. Errors returned are infrastructure failures
// (store, bus): the command is redelivered. The step's own failure is a
// result, not an error.
func (w *Worker) handle(ctx context.Context, step Step, h Handler, e *crossbus.Event) error {
	if e.Type() != CommandType {
		return nil
	}
	env, err := readEnvelope(e)
	if err != nil {
		return err
	}
	if env.key.Step != step.Name {
		return crossbus.Permanent(fmt.Errorf("chain %q: command for step %q arrived on the topic of %q", w.def.Name, env.key.Step, step.Name))
	}
	data, err := crossbus.DataAs[commandData](e)
	if err != nil {
		return err
	}
	if env.key.Compensation && h.Undo == nil {
		return w.reply(ctx, env, nil, nil) // nothing to undo
	}
	claim, err := w.store.BeginStep(ctx, env.key, w.opts.Lease)
	if err != nil {
		return fmt.Errorf("chain %q: claim step %q of %q: %w", w.def.Name, step.Name, env.key.Instance, err)
	}
	switch claim.Status {
	case crossbus.ClaimCompleted:
		return w.reply(ctx, env, claim.Output, nil) // done before: answer from the record
	case crossbus.ClaimInProgress:
		return fmt.Errorf("chain %q: step %q of %q: %w", w.def.Name, step.Name, env.key.Instance, crossbus.ErrInProgress)
	}
	in := &Input{Instance: env.key.Instance, Step: step.Name, Attempt: env.attempt, Compensation: env.key.Compensation,
		Data: data.Input, Outputs: data.Outputs}
	output, herr := w.run(ctx, h, in, env.deadline)
	sctx := context.WithoutCancel(ctx)
	if herr != nil && ctx.Err() != nil {
		// The worker is shutting down: not the step's failure. Free the
		// claim and leave the command to the bus for redelivery.
		_ = w.store.ReleaseStep(sctx, env.key, claim.Token)
		return fmt.Errorf("chain %q: step %q of %q interrupted: %w", w.def.Name, step.Name, env.key.Instance, ctx.Err())
	}
	if herr != nil {
		if err := w.store.ReleaseStep(sctx, env.key, claim.Token); errors.Is(err, crossbus.ErrLeaseLost) {
			return nil // another worker took the step over; it reports
		} else if err != nil {
			return fmt.Errorf("chain %q: release step %q of %q: %w", w.def.Name, step.Name, env.key.Instance, err)
		}
		return w.reply(ctx, env, nil, herr)
	}
	if err := w.store.FinishStep(sctx, env.key, claim.Token, output); errors.Is(err, crossbus.ErrLeaseLost) {
		w.log.Warn("chain: step finished after its claim expired; the worker that took it over reports",
			"chain", w.def.Name, "instance", env.key.Instance, "step", step.Name)
		return nil
	} else if err != nil {
		return fmt.Errorf("chain %q: record step %q of %q: %w", w.def.Name, step.Name, env.key.Instance, err)
	}
	return w.reply(ctx, env, output, nil)
}

// run calls the handler with the attempt's deadline, turning a panic into
// an error and encoding the output.
func (w *Worker) run(ctx context.Context, h Handler, in *Input, deadline time.Time) (out json.RawMessage, err error) {
	if !deadline.IsZero() {
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("chain: attempt %d of step %q arrived after its deadline: %w", in.Attempt, in.Step, context.DeadlineExceeded)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			err = Fail(ClassPanic, fmt.Errorf("step %q panicked: %v\n%s", in.Step, v, debug.Stack()))
		}
	}()
	if in.Compensation {
		return nil, h.Undo(ctx, in)
	}
	v, err := h.Do(ctx, in)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
		}
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, crossbus.Permanent(fmt.Errorf("chain: encode output of step %q: %w", in.Step, err))
	}
	return b, nil
}

func (w *Worker) reply(ctx context.Context, env envelope, output json.RawMessage, herr error) error {
	res, err := newResult(w.def, env, output, herr)
	if err != nil {
		return err
	}
	if err := w.bus.Publish(ctx, w.def.ResultsTopic(), res); err != nil {
		return fmt.Errorf("chain %q: publish result of step %q of %q: %w", w.def.Name, env.key.Step, env.key.Instance, err)
	}
	return nil
}
