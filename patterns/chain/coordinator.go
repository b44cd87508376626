package chain

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
)

// Bus is what the chain needs of a bus: *crossbus.Bus implements it.
type Bus interface {
	crossbus.Publisher
	crossbus.Subscriber
}

// CoordinatorOptions configure a Coordinator. The zero value is valid.
type CoordinatorOptions struct {
	// Subscription names the coordinator's subscription to the result
	// topic (default chain name + "-coordinator"). Coordinators of one chain
	// in several processes share it and split the results.
	Subscription string
	// RouteOptions configure that subscription (concurrency, the retry of
	// store failures, dead-lettering).
	RouteOptions []crossbus.RouteOption
	// RedispatchDelay is how long a command that could not be published
	// waits before it is published again (default 1s).
	RedispatchDelay time.Duration
	// OnChange, when set, is called with a copy of the instance after each
	// transition is saved (tracing, metrics, tests). It must not block.
	OnChange func(inst *Instance)
	// Logger receives what is not returned to a caller (default: discard).
	Logger *slog.Logger

	// Leader, when set, elects one coordinator among the replicas that
	// share the store: only the lease holder consumes results, runs the
	// timers and resumes unfinished instances; the others wait to take
	// over (see patterns/leader). Begin, Get and Wait work on every
	// replica. Without it, every started coordinator runs its timers and
	// resumes every unfinished instance at Start, which suits one
	// coordinator per chain.
	Leader leader.Store
	// LeaderName names the lease (default chain name + "-coordinator").
	LeaderName string
	// LeaderOptions configure the election (TTL, holder name, logger).
	LeaderOptions leader.Options
	// RescanInterval is how often the leader lists the unfinished
	// instances to arm their timers, so it learns of instances begun on
	// other replicas (default: the lease's TTL, or leader.DefaultTTL).
	// Used only with Leader.
	RescanInterval time.Duration
}

// Coordinator runs the instances of one chain: it starts them, sends step
// commands, consumes step results, keeps the timers of retries and timeouts,
// and saves every transition in the Store. See the package documentation.
type Coordinator struct {
	def   *Definition
	bus   Bus
	store Store
	opts  CoordinatorOptions
	log   *slog.Logger

	locks [64]sync.Mutex // per-instance serialisation, by hash of the id

	mu      sync.Mutex
	started bool
	sub     *crossbus.Subscription
	stop    context.CancelFunc
	done    chan struct{}
	changed chan struct{} // closed on each saved transition
	timers  timerQueue
	wakeT   chan struct{}

	stopElection context.CancelFunc // with a Leader: ends the campaign
	elected      chan struct{}      // closed when the campaign has ended
}

// NewCoordinator returns a coordinator of def over bus and store. Call Start
// before Begin.
func NewCoordinator(def *Definition, bus Bus, store Store, opts CoordinatorOptions) (*Coordinator, error) {
	if def == nil || bus == nil || store == nil {
		return nil, fmt.Errorf("%w: NewCoordinator needs a definition, a bus and a store", crossbus.ErrInvalidOption)
	}
	if err := def.Validate(); err != nil {
		return nil, err
	}
	if opts.RedispatchDelay < 0 {
		return nil, fmt.Errorf("%w: RedispatchDelay must not be negative", crossbus.ErrInvalidOption)
	}
	if opts.RedispatchDelay == 0 {
		opts.RedispatchDelay = time.Second
	}
	if opts.Subscription == "" {
		opts.Subscription = def.Name + "-coordinator"
	}
	if opts.RescanInterval < 0 {
		return nil, fmt.Errorf("%w: RescanInterval must not be negative", crossbus.ErrInvalidOption)
	}
	if opts.RescanInterval == 0 {
		opts.RescanInterval = cmp.Or(opts.LeaderOptions.TTL, leader.DefaultTTL)
	}
	if opts.LeaderName == "" {
		opts.LeaderName = def.Name + "-coordinator"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{def: def, bus: bus, store: store, opts: opts, log: log,
		changed: make(chan struct{}), wakeT: make(chan struct{}, 1)}, nil
}

// Start subscribes to the results, resumes the chain's unfinished instances
// from the store (an attempt that was in flight is sent again, a waiting one
// waits for its time) and starts the timers. It returns once results are
// being received.
//
// With a Leader, Start begins campaigning and returns at once; the replica
// does all of the above each time it is elected, with a context that
// carries its lease, so that the store's writes can be fenced (see
// stores/postgres), and stops when it loses the lease.
func (c *Coordinator) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("chain: coordinator already started")
	}
	c.started = true
	c.mu.Unlock()
	if c.opts.Leader == nil {
		return c.activate(ctx)
	}
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.mu.Lock()
	c.stopElection, c.elected = cancel, make(chan struct{})
	c.mu.Unlock()
	go func() {
		defer close(c.elected)
		if err := leader.Run(ectx, c.opts.Leader, c.opts.LeaderName, c.opts.LeaderOptions, c.lead); err != nil {
			c.log.Error("chain: leader election ended", "chain", c.def.Name, "error", err)
		}
	}()
	return nil
}

// lead coordinates while this replica holds the lease: lctx ends when it
// no longer can prove it does.
func (c *Coordinator) lead(lctx context.Context, lease leader.Lease) error {
	c.log.Info("chain: coordinating as leader", "chain", c.def.Name, "token", lease.Token)
	for {
		err := c.activate(lctx)
		if err == nil {
			break
		}
		c.log.Warn("chain: start as leader failed; will try again", "chain", c.def.Name, "error", err)
		t := time.NewTimer(c.opts.RedispatchDelay)
		select {
		case <-lctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.deactivate(ctx); err != nil {
			c.log.Warn("chain: stop as leader", "chain", c.def.Name, "error", err)
		}
	}()
	t := time.NewTicker(c.opts.RescanInterval)
	defer t.Stop()
	for {
		select {
		case <-lctx.Done():
			return nil
		case <-t.C:
		}
		open, err := c.store.Unfinished(lctx, c.def.Name)
		if err != nil {
			if lctx.Err() == nil {
				c.log.Warn("chain: list unfinished instances", "chain", c.def.Name, "error", err)
			}
			continue
		}
		for _, inst := range open {
			c.schedule(inst)
		}
	}
}

// activate subscribes to the results, starts the timers and resumes the
// unfinished instances. ctx is Start's, or with a Leader the lease's, which
// then bounds the subscription's handling and the timers and is passed to
// the store's writes.
func (c *Coordinator) activate(ctx context.Context) error {
	handler := crossbus.HandlerFunc(c.handleResult)
	if lease, ok := leader.LeaseFrom(ctx); ok {
		handler = func(hctx context.Context, e *crossbus.Event) error {
			if err := ctx.Err(); err != nil {
				// The lease is lost: leave the result to the next leader.
				return fmt.Errorf("chain %q: not the leader any more: %w", c.def.Name, err)
			}
			return c.handleResult(leader.WithLease(hctx, lease), e)
		}
	}
	opts := c.opts.RouteOptions
	if c.def.DeadLetterTopic != "" {
		opts = append([]crossbus.RouteOption{crossbus.WithDeadLetterTopic(c.def.DeadLetterTopic)}, opts...)
	}
	sub, err := c.bus.Subscribe(ctx, c.def.ResultsTopic(), c.opts.Subscription, handler, opts...)
	if err != nil {
		return fmt.Errorf("chain %q: subscribe to results: %w", c.def.Name, err)
	}
	tctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	if c.opts.Leader != nil {
		tctx, stop = context.WithCancel(ctx) // the timers stop with the lease
	}
	c.mu.Lock()
	c.sub, c.stop, c.done = sub, stop, make(chan struct{})
	c.mu.Unlock()
	go c.runTimers(tctx)

	open, err := c.store.Unfinished(ctx, c.def.Name)
	if err != nil {
		return errors.Join(fmt.Errorf("chain %q: load unfinished instances: %w", c.def.Name, err), c.deactivate(context.WithoutCancel(ctx)))
	}
	for _, inst := range open {
		if _, err := c.update(ctx, inst.ID, c.resume); err != nil {
			return errors.Join(fmt.Errorf("chain %q: resume %q: %w", c.def.Name, inst.ID, err), c.deactivate(context.WithoutCancel(ctx)))
		}
	}
	return nil
}

// resume sends again an attempt that was in flight when the last
// coordinator stopped (a worker that did the step answers from its record),
// with a fresh attempt deadline: a crash does not use up attempts.
func (c *Coordinator) resume(inst *Instance, now time.Time) (bool, *envelope) {
	if inst.Status.Finished() || inst.Phase != PhaseDispatched {
		return false, nil
	}
	return true, c.def.dispatch(inst, now)
}

// Close stops the timers and the result subscription (draining in-flight
// results until ctx ends). Instances stay in the store; a new coordinator
// resumes them. With a Leader it also ends the campaign and releases the
// lease, so another replica takes over at once.
func (c *Coordinator) Close(ctx context.Context) error {
	c.mu.Lock()
	stopElection, elected := c.stopElection, c.elected
	c.stopElection = nil
	c.mu.Unlock()
	if stopElection != nil {
		stopElection()
		select {
		case <-elected:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	return c.deactivate(ctx)
}

// deactivate stops the timers and the result subscription.
func (c *Coordinator) deactivate(ctx context.Context) error {
	c.mu.Lock()
	sub, stop, done := c.sub, c.stop, c.done
	c.sub, c.stop = nil, nil
	c.mu.Unlock()
	if sub == nil {
		return nil
	}
	stop()
	<-done
	return sub.Close(ctx)
}

// Begin starts an instance of the chain with input (encoded as JSON). It
// returns an error matching ErrExists when an instance with the id exists,
// so a retried Begin never starts the chain twice.
func (c *Coordinator) Begin(ctx context.Context, id string, input any) (*Instance, error) {
	c.mu.Lock()
	started := c.sub != nil || c.stopElection != nil
	c.mu.Unlock()
	if !started {
		return nil, errors.New("chain: Begin before Start: the coordinator would miss the results")
	}
	if id == "" {
		return nil, fmt.Errorf("%w: instance id is empty", crossbus.ErrInvalidOption)
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("chain %q: encode input of %q: %w", c.def.Name, id, err)
	}
	now := time.Now().UTC()
	inst := &Instance{ID: id, Chain: c.def.Name, Status: StatusRunning, Input: raw, Outputs: map[string]json.RawMessage{},
		Created: now, Updated: now}
	if c.def.Timeout > 0 {
		inst.Deadline = now.Add(c.def.Timeout)
	}
	env := c.def.startStep(inst, 0, now)
	lock := c.lock(id)
	lock.Lock()
	defer lock.Unlock()
	if err := c.store.Create(ctx, inst); err != nil {
		return nil, err
	}
	if err := c.send(ctx, inst, env); err != nil {
		return nil, err
	}
	c.saved(inst)
	return inst.Clone(), nil
}

// Get returns the instance's current state (the query API).
func (c *Coordinator) Get(ctx context.Context, id string) (*Instance, error) {
	return c.store.Load(ctx, id)
}

// Wait returns the instance once it has finished, or ctx's error. It
// notices transitions of this coordinator at once and others' by polling.
func (c *Coordinator) Wait(ctx context.Context, id string) (*Instance, error) {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		inst, err := c.store.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if inst.Status.Finished() {
			return inst, nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return inst, ctx.Err()
		}
		t.Stop()
	}
}

func (c *Coordinator) lock(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &c.locks[h.Sum32()%uint32(len(c.locks))]
}

// update loads the instance, applies fn and saves the result, retrying when
// another coordinator saved in between; then it sends the command fn asked
// for.
func (c *Coordinator) update(ctx context.Context, id string, fn func(inst *Instance, now time.Time) (bool, *envelope)) (*Instance, error) {
	lock := c.lock(id)
	lock.Lock()
	defer lock.Unlock()
	for tries := 0; ; tries++ {
		inst, err := c.store.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if inst.Chain != c.def.Name {
			return inst, nil // another chain's instance: not ours to change
		}
		now := time.Now().UTC()
		changed, env := fn(inst, now)
		if !changed {
			c.schedule(inst)
			return inst, nil
		}
		inst.Updated = now
		err = c.store.Save(ctx, inst)
		if errors.Is(err, ErrStale) && tries < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := c.send(ctx, inst, env); err != nil {
			return nil, err
		}
		c.saved(inst)
		return inst, nil
	}
}

// send publishes the command env describes; when the bus refuses it, the
// attempt waits RedispatchDelay and is sent again (it is not counted as a
// failure of the step).
func (c *Coordinator) send(ctx context.Context, inst *Instance, env *envelope) error {
	if env == nil {
		return nil
	}
	step, _, _ := c.def.step(env.key.Step)
	cmd, err := newCommand(c.def, inst, *env)
	if err == nil {
		err = c.bus.Publish(ctx, c.def.StepTopic(step), cmd)
	}
	if err == nil {
		return nil
	}
	c.log.Warn("chain: publish of step command failed; will send it again",
		"chain", c.def.Name, "instance", inst.ID, "step", env.key.Step, "error", err, "retryIn", c.opts.RedispatchDelay)
	inst.Phase = PhaseWaiting
	inst.Due = time.Now().UTC().Add(c.opts.RedispatchDelay)
	if serr := c.store.Save(context.WithoutCancel(ctx), inst); serr != nil {
		// The saved state says "dispatched": the attempt deadline or the
		// next coordinator's resume sends it again.
		return errors.Join(err, serr)
	}
	return nil
}

// saved schedules the instance's timer and tells waiters.
func (c *Coordinator) saved(inst *Instance) {
	c.schedule(inst)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if c.opts.OnChange != nil {
		c.opts.OnChange(inst.Clone())
	}
}

// handleResult applies a result event. Store failures are returned so the
// bus retries the result.
func (c *Coordinator) handleResult(ctx context.Context, e *crossbus.Event) error {
	if e.Type() != ResultType {
		return nil
	}
	env, err := readEnvelope(e)
	if err != nil {
		return err
	}
	res, err := crossbus.DataAs[resultData](e)
	if err != nil {
		return err
	}
	_, err = c.update(ctx, env.key.Instance, func(inst *Instance, now time.Time) (bool, *envelope) {
		return c.def.onResult(inst, env, res, now)
	})
	if errors.Is(err, ErrNotFound) {
		c.log.Warn("chain: result for an unknown instance dropped", "chain", c.def.Name, "instance", env.key.Instance)
		return nil
	}
	return err
}

// tick applies the instance's due timers.
func (c *Coordinator) tick(ctx context.Context, id string) {
	_, err := c.update(ctx, id, c.def.onTimer)
	if err != nil && !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
		c.log.Error("chain: timer failed; will try again", "chain", c.def.Name, "instance", id, "error", err)
		c.timers.push(time.Now().Add(c.opts.RedispatchDelay), id)
	}
}
