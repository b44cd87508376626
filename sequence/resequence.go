package sequence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/sysclock"
)

// ResequenceOptions configure Resequence. Zero values take the documented
// defaults.
type ResequenceOptions struct {
	// GapTimeout is how long events wait for a missing sequence number
	// before the resequencer gives up on it and releases them with a gap
	// notice (default 30s). The wait restarts whenever the key makes
	// progress, and does not run out while the missing event is being
	// handled or retried.
	GapTimeout time.Duration
	// MaxBuffered bounds how many events of one key may wait at once
	// (default 64). An event beyond it is returned to the provider with an
	// error matching crossbus.ErrInProgress, so it is redelivered later without
	// counting as a failed attempt.
	MaxBuffered int
	// Store holds the last applied sequence of each key: the next expected
	// one is its successor (default: a new MemoryStore, so a new
	// process expects every key to start at 1). Use a durable store to
	// resume across restarts.
	Store Store
	// Logger receives gap releases (Warn) and skipped old events (Debug)
	// (default: discard).
	Logger *slog.Logger
}

// GapInfo is the notice a handler gets (GapFrom) when the resequencer
// released its event although earlier sequence numbers never arrived.
type GapInfo struct {
	Key      string        // the partition key
	Expected uint64        // the first missing sequence number
	Got      uint64        // this event's sequence number
	Waited   time.Duration // how long the resequencer waited
}

// Missing is how many sequence numbers were skipped.
func (g GapInfo) Missing() uint64 { return g.Got - g.Expected }

type gapKey struct{}

// GapFrom returns the gap notice of an event the resequencer released past a
// gap, and false for an event released in order.
func GapFrom(ctx context.Context) (GapInfo, bool) {
	g, ok := ctx.Value(gapKey{}).(GapInfo)
	return g, ok
}

// resequenceFullError is returned for an event that finds its key's buffer
// full; it matches crossbus.ErrInProgress so the delivery is retried later without
// counting as a failed attempt.
type resequenceFullError struct {
	key string
	max int
}

func (e *resequenceFullError) Error() string {
	return fmt.Sprintf("crossbus: resequencer: %d events of key %q already wait; returned for redelivery", e.max, e.key)
}

func (e *resequenceFullError) Is(target error) bool { return target == crossbus.ErrInProgress }

// Resequence returns middleware that hands events to the handler in sequence
// order per partition key (the sequence extension, as a Stamper stamps
// it), whatever order they arrive in:
//
//   - the next expected event of a key runs at once; after it succeeds (or
//     fails for good and is dead-lettered) the key expects the following
//     number;
//   - an event ahead of the expected one waits, holding its worker, until
//     its predecessors have run;
//   - an event behind the expected one — a duplicate, or one that arrives
//     after its gap was given up on — is acked without running;
//   - when the expected event has not arrived within GapTimeout, the
//     resequencer gives up on it and releases the earliest waiting event
//     with a gap notice in its context (GapFrom; also logged). This is the
//     chosen policy: the stream keeps moving, and the handler decides what a
//     gap means — return crossbus.Permanent to dead-letter the event instead.
//
// Events without a sequence pass through; a malformed one is a permanent
// error.
//
// Concurrency: waiting events occupy workers, and a missing event can only be
// received by a free worker. Give the route WithPrefetch(1) — otherwise the
// missing event may sit behind a waiting one in the same worker's buffer —
// and WithConcurrency above the largest number of events that can be out of
// order at once (across keys); events beyond MaxBuffered per key are returned
// to the provider. Do not combine with WithOrdering: an ordered route
// delivers a key's events one at a time in publish order, so a waiting event
// would block its own predecessor until the gap timeout.
func Resequence(opts ResequenceOptions) (crossbus.Middleware, error) {
	switch {
	case opts.GapTimeout < 0:
		return nil, fmt.Errorf("%w: ResequenceOptions.GapTimeout must not be negative, got %v", crossbus.ErrInvalidOption, opts.GapTimeout)
	case opts.MaxBuffered < 0:
		return nil, fmt.Errorf("%w: ResequenceOptions.MaxBuffered must not be negative, got %d", crossbus.ErrInvalidOption, opts.MaxBuffered)
	}
	if opts.GapTimeout == 0 {
		opts.GapTimeout = 30 * time.Second
	}
	if opts.MaxBuffered == 0 {
		opts.MaxBuffered = 64
	}
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &resequencer{o: opts, keys: map[string]*seqKey{}}
	return func(next crossbus.Handler) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error { return r.handle(ctx, e, next) })
	}, nil
}

type resequencer struct {
	o         ResequenceOptions
	clock     crossbus.Clock // the route's (DeliveryInfo.Clock), from the first event on
	clockOnce sync.Once

	mu   sync.Mutex
	keys map[string]*seqKey // keys with work; idle keys are dropped (the store remembers)
}

// seqKey is one key's state; guarded by resequencer.mu.
type seqKey struct {
	key      string
	next     uint64 // the expected sequence; 0 until loaded from the store
	loading  bool
	running  bool      // the expected event is being handled
	seen     bool      // the expected event has arrived (running or awaiting a retry)
	lastEnd  time.Time // when its last failed attempt ended
	waits    map[uint64]int
	waiting  int
	gap      *GapInfo // a release past a gap, for the event gap.Got
	timer    crossbus.Timer
	timerGen uint64    // identifies the live timer; stale firings are ignored
	since    time.Time // when the wait for next began
	changed  chan struct{}
	attached int // goroutines (and the timer) using this state
}

func (r *resequencer) handle(ctx context.Context, e *crossbus.Event, next crossbus.Handler) error {
	r.clockOnce.Do(func() {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		r.clock = sysclock.Or(info.Clock)
	})
	seq, ok, err := Of(e)
	if err != nil {
		return crossbus.Permanent(err)
	}
	if !ok {
		return next.Handle(ctx, e)
	}
	key := crossbus.PartitionKey(e)
	gap, old, err := r.acquire(ctx, key, seq)
	if err != nil || old {
		return err
	}
	hctx := ctx
	if gap != nil {
		hctx = context.WithValue(ctx, gapKey{}, *gap)
	}
	herr := next.Handle(hctx, e)
	applied := herr == nil || !errors.Is(herr, crossbus.ErrInProgress) && (crossbus.IsPermanent(herr) || exhaustedIn(ctx))
	if applied {
		if _, err := r.o.Store.Advance(context.WithoutCancel(ctx), key, seq); err != nil && herr == nil {
			herr = fmt.Errorf("sequence: resequencer: store sequence %d of %q: %w", seq, key, err)
			applied = false
		}
	}
	r.release(key, seq, applied)
	return herr
}

// exhaustedIn reports whether the delivery in ctx is on its last attempt, so
// a failure dead-letters it.
func exhaustedIn(ctx context.Context) bool {
	info, ok := crossbus.DeliveryInfoFrom(ctx)
	return ok && info.MaxAttempts > 0 && info.Attempt >= info.MaxAttempts
}

// acquire waits until seq is the key's expected sequence and no handler of
// the key runs. It reports an old event (to ack unrun), or returns the gap
// notice of an event released past a gap (nil in order).
func (r *resequencer) acquire(ctx context.Context, key string, seq uint64) (gap *GapInfo, old bool, err error) {
	r.mu.Lock()
	st := r.attach(key)
	defer func() { r.detach(st); r.mu.Unlock() }()
	for st.next == 0 {
		if st.loading { // another goroutine reads the store
			if err := r.waitChange(ctx, st); err != nil {
				return nil, false, err
			}
			continue
		}
		st.loading = true
		r.mu.Unlock()
		last, err := r.o.Store.Last(ctx, key)
		r.mu.Lock()
		st.loading = false
		if err != nil {
			r.broadcast(st)
			return nil, false, fmt.Errorf("sequence: resequencer: read last sequence of %q: %w", key, err)
		}
		st.next = last + 1
		r.broadcast(st)
	}
	waiting := false
	defer func() {
		if waiting {
			st.waiting--
			if st.waits[seq]--; st.waits[seq] == 0 {
				delete(st.waits, seq)
			}
		}
	}()
	for {
		switch {
		case seq < st.next:
			r.o.Logger.Debug("crossbus: resequencer: old or duplicate event acked unrun", "key", key, "sequence", seq, "expected", st.next)
			return nil, true, nil
		case seq == st.next && !st.running:
			st.running, st.seen = true, true
			if g := st.gap; g != nil && g.Got == seq {
				st.gap = nil
				return g, false, nil
			}
			return nil, false, nil
		}
		if !waiting {
			if st.waiting >= r.o.MaxBuffered {
				return nil, false, &resequenceFullError{key: key, max: r.o.MaxBuffered}
			}
			waiting = true
			st.waiting++
			st.waits[seq]++
			r.armGap(st)
		}
		if err := r.waitChange(ctx, st); err != nil {
			return nil, false, err
		}
	}
}

// errResequenceStopping returns a waiting event to the provider when its
// subscription stops receiving: its predecessor can no longer arrive.
var errResequenceStopping = fmt.Errorf("%w: resequencer: subscription stopping; event returned for redelivery", crossbus.ErrInProgress)

// waitChange waits, with r.mu released, until st changes, ctx ends or the
// subscription stops receiving.
func (r *resequencer) waitChange(ctx context.Context, st *seqKey) error {
	ch := st.changed
	r.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	case <-stoppingOf(ctx):
		err = errResequenceStopping
	}
	r.mu.Lock()
	return err
}

// release ends the run of the key's expected event seq; applied moves the
// key to the next sequence.
func (r *resequencer) release(key string, seq uint64, applied bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.attach(key)
	defer r.detach(st)
	st.running = false
	switch {
	case applied && seq == st.next:
		st.next = seq + 1
		st.seen = false
		st.since = time.Time{}
		r.stopGap(st)
		r.armGap(st)
	case !applied:
		st.lastEnd = r.clock.Now()
	}
	r.broadcast(st)
}

// armGap starts the gap timer when events wait beyond the expected one and
// no timer runs; r.mu is held.
func (r *resequencer) armGap(st *seqKey) {
	if st.timer != nil || st.waiting == 0 {
		return
	}
	if st.since.IsZero() {
		st.since = r.clock.Now()
	}
	st.attached++ // the timer keeps the state alive until it fires or stops
	st.timerGen++
	gen := st.timerGen
	st.timer = r.clock.AfterFunc(r.o.GapTimeout, func() { r.gapTimedOut(st, gen) })
}

// stopGap stops the gap timer; r.mu is held.
func (r *resequencer) stopGap(st *seqKey) {
	if st.timer == nil {
		return
	}
	if st.timer.Stop() {
		st.attached-- // it will not fire
	}
	st.timer = nil
	st.timerGen++
}

// gapTimedOut gives up on the expected sequence of st, unless it is being
// handled or was retried within the gap timeout, and releases the earliest
// waiting event.
func (r *resequencer) gapTimedOut(st *seqKey, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.detach(st)
	if st.timerGen != gen { // stopped or replaced meanwhile
		return
	}
	st.timer = nil
	if st.running || st.seen && r.clock.Now().Sub(st.lastEnd) < r.o.GapTimeout {
		r.armGap(st) // the expected event exists and is being retried
		return
	}
	var first uint64
	for s := range st.waits {
		if first == 0 || s < first {
			first = s
		}
	}
	if first <= st.next { // nothing beyond the expected one waits
		r.armGap(st)
		return
	}
	g := &GapInfo{Key: st.key, Expected: st.next, Got: first, Waited: r.clock.Now().Sub(st.since)}
	r.o.Logger.Warn("crossbus: resequencer: sequence gap; releasing later events",
		"key", st.key, "expected", g.Expected, "released", g.Got, "missing", g.Missing(), "waited", g.Waited)
	st.gap = g
	st.next = first
	st.seen = false
	st.since = time.Time{}
	r.broadcast(st)
}

func (r *resequencer) broadcast(st *seqKey) {
	close(st.changed)
	st.changed = make(chan struct{})
}

// attach returns key's state, creating it, and counts the user; r.mu held.
func (r *resequencer) attach(key string) *seqKey {
	st := r.keys[key]
	if st == nil {
		st = &seqKey{key: key, waits: map[uint64]int{}, changed: make(chan struct{})}
		r.keys[key] = st
	}
	st.attached++
	return st
}

// detach drops a user; an idle key's state is forgotten (the store keeps
// its last applied sequence); r.mu held.
func (r *resequencer) detach(st *seqKey) {
	st.attached--
	if st.attached == 0 && !st.running && !st.seen && st.waiting == 0 && st.gap == nil && st.timer == nil && r.keys[st.key] == st {
		delete(r.keys, st.key)
	}
}

// stoppingOf returns a channel closed once the subscription the handler runs
// for stops receiving (nil outside a pulled subscription).
func stoppingOf(ctx context.Context) <-chan struct{} {
	info, _ := crossbus.DeliveryInfoFrom(ctx)
	return info.Stopping
}
