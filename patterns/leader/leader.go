// Package leader elects one leader among the replicas of a service that
// share a store, with fencing tokens, so that work that must run once — an
// outbox relay, a chain coordinator's timers — runs on one replica at a
// time and moves to another when its holder dies.
//
// # Leases and fencing tokens
//
// A Store keeps named leases. TryAcquire takes a lease that is free,
// released or expired, renews it when the caller already holds it, and in
// every case returns the lease as the store now has it: the caller holds it
// when Lease.Holder is the caller's holder name and Lease.Token is the token
// of its term. Each new term — an acquisition of a free, released or expired
// lease — gets a token higher than every earlier one of that name; a renewal
// keeps the token. So a holder that lost its lease (paused past its expiry
// while another replica took over) carries a lower token than the current
// holder, and a store that checks the token on writes refuses the stale
// holder's writes (a fencing token). Release frees a lease only for the
// holder and token that hold it.
//
// # Run
//
// Run campaigns for a lease and, while it holds it, runs a function with a
// context that is cancelled as soon as the lease can no longer be proven
// held. The function also receives the Lease (and its context carries it,
// see LeaseFrom), so writes can be fenced by the token in a store that
// supports it (stores/postgres does; see its documentation).
//
// # Guarantees and clock assumptions
//
// The store alone decides expiry, with its own clock (the memory store: the
// process's monotonic clock; stores/postgres: the database server's clock),
// so replicas need no synchronised wall clocks. Run measures the lease on
// the local monotonic clock from the moment it sent the request that
// acquired or last renewed the lease: the store set the expiry to ttl after
// it processed the request, which was after the request was sent, so the
// lease is held at least until sent+ttl as long as the store's clock and
// the local one do not drift apart by more than the safety margin over one
// ttl (Options.SafetyMargin, default ttl/5; clocks drift by parts per
// million, and the margin also absorbs scheduling delays of the cancelling
// goroutine). Run renews every ttl/3; when renewals fail (the store is
// unreachable) it keeps trying, and cancels the function's context at
// sent+ttl-margin of the last successful renewal. A renewal that finds the
// lease held by another holder, or in another term, cancels the context at
// once.
//
// What this gives, under that assumption:
//
//   - Mutual exclusion in time: the periods in which Run's functions on
//     different replicas have a live context do not overlap, except for the
//     time a function takes to notice its cancelled context. Code that
//     checks its context before each externally visible action (the outbox
//     relay checks it before each publish) acts as leader only while it
//     held the lease at the check; an action already started when the lease
//     is lost (a publish in flight) can still complete after it. That is
//     what fencing covers: a store write made with the lease's token is
//     refused once another term has begun.
//   - Hand-over: a holder that dies (crash, SIGKILL, network partition from
//     the store) stops renewing; its lease expires at most ttl after its
//     last renewal, and a follower, which retries every
//     Options.RetryInterval (default ttl/3), takes it within about
//     ttl+RetryInterval of the death. A holder that stops cleanly (its
//     context ends) releases the lease, and a follower takes it at its next
//     attempt.
//   - Tokens: a term of another holder always has a higher token than
//     every earlier term. A replica that gave up its term locally (its
//     renewals failed) and reaches the store again before the lease
//     expired there renews it in the same term: its earlier term's writes
//     were made under a lease that never lapsed.
//   - Progress: Run keeps campaigning after losing a lease; it returns only
//     when its context ends or the function returns while holding the
//     lease.
//
// A process paused longer than the margin (a stop-the-world pause, a
// suspended VM) may resume with a context not yet cancelled although its
// lease has expired; that is the case fencing tokens exist for: its writes
// to a fencing store fail, and its publishes are at-least-once duplicates
// that consumers deduplicate by event id.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
)

// Lease is a named lease as a store has it.
type Lease struct {
	Name string
	// Holder names the holder; "" when the lease is free.
	Holder string
	// Token identifies the holder's term: it rises with each new term and
	// stays the same across renewals.
	Token int64
	// Expires is when the lease runs out, by the store's clock (for
	// information; Run measures the lease on the local monotonic clock).
	Expires time.Time
}

// HeldBy reports whether holder holds the lease in the term of token.
func (l Lease) HeldBy(holder string, token int64) bool {
	return l.Holder != "" && l.Holder == holder && l.Token == token
}

// Store keeps leases. Implementations must make TryAcquire atomic: of
// concurrent calls for a free lease exactly one holder gets it.
// stores/storetest.TestLeaderStore checks an implementation.
type Store interface {
	// TryAcquire takes the lease name for holder for ttl when it is free,
	// released or expired (a new term, with a token higher than any
	// earlier one), or extends it to ttl from now when holder holds it (the
	// same term and token). It returns the lease as the store now has it:
	// the caller holds it iff Lease.Holder == holder (and, for a renewal,
	// the token is the one it had).
	TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// Release frees the lease when holder holds it with token; otherwise it
	// returns an error matching ErrNotHeld and changes nothing. The token
	// is kept: the next term gets a higher one.
	Release(ctx context.Context, name, holder string, token int64) error
}

// ErrNotHeld is returned by Release when the caller does not hold the lease
// (it expired, was released, or passed to another holder).
var ErrNotHeld = errors.New("leader: lease not held")

// ErrFenced is returned by a store write made with a lease (see WithLease)
// whose term has ended: another holder may have taken over, so the write
// was refused.
var ErrFenced = errors.New("leader: write fenced: the lease's term has ended")

// ValidateLease checks TryAcquire's arguments; store implementations call
// it first.
func ValidateLease(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: leader: lease name is empty", crossbus.ErrInvalidOption)
	case holder == "":
		return fmt.Errorf("%w: leader: holder name is empty", crossbus.ErrInvalidOption)
	case ttl <= 0:
		return fmt.Errorf("%w: leader: lease ttl must be positive (got %v)", crossbus.ErrInvalidOption, ttl)
	}
	return nil
}

type leaseKey struct{}

// WithLease returns a context that carries lease. Stores that support
// fencing make the writes they are given this context for conditional on
// the lease's term being current (see ErrFenced); others ignore it. Run
// passes its function a context that carries the lease.
func WithLease(ctx context.Context, lease Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, lease)
}

// LeaseFrom returns the lease ctx carries.
func LeaseFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok
}

// Defaults of Options.
const (
	DefaultTTL = 15 * time.Second
)

// Options configure Run. The zero value is valid.
type Options struct {
	// Holder names this replica (default: a random name, unique per Run).
	// Two Runs must not share a holder name.
	Holder string
	// TTL is the lease's time to live (default DefaultTTL). A dead
	// holder's lease passes to another replica about TTL after its death.
	TTL time.Duration
	// SafetyMargin is cut from each lease's local deadline (default TTL/5;
	// at most TTL/2). See the package documentation.
	SafetyMargin time.Duration
	// RetryInterval is how often a follower tries to take the lease
	// (default TTL/3).
	RetryInterval time.Duration
	// Logger receives elections, losses and store failures (default:
	// discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.TTL < 0 || o.SafetyMargin < 0 || o.RetryInterval < 0 {
		return o, fmt.Errorf("%w: leader: TTL, SafetyMargin and RetryInterval must not be negative", crossbus.ErrInvalidOption)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.SafetyMargin == 0 {
		o.SafetyMargin = o.TTL / 5
	}
	if o.SafetyMargin > o.TTL/2 {
		return o, fmt.Errorf("%w: leader: SafetyMargin %v is over half the TTL %v", crossbus.ErrInvalidOption, o.SafetyMargin, o.TTL)
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = o.TTL / 3
	}
	if o.Holder == "" {
		o.Holder = claimtoken.New()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Run campaigns for the lease name in store and runs fn whenever this
// replica holds it, with a context that is cancelled as soon as the lease
// can no longer be proven held and that carries the lease (LeaseFrom). After
// a loss it waits for fn to return and campaigns again. When ctx ends, Run
// cancels fn's context, waits for fn, releases the lease and returns nil.
// When fn returns while the lease is still held, Run releases the lease and
// returns fn's error (nil included): fn is meant to run until its context
// ends. Store failures while campaigning are logged and retried.
func Run(ctx context.Context, store Store, name string, opts Options, fn func(ctx context.Context, lease Lease) error) error {
	if store == nil || fn == nil {
		return fmt.Errorf("%w: leader: Run needs a store and a function", crossbus.ErrInvalidOption)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if err := ValidateLease(name, opts.Holder, opts.TTL); err != nil {
		return err
	}
	log := opts.Logger.With("lease", name, "holder", opts.Holder)
	for {
		sent := time.Now()
		lease, err := store.TryAcquire(ctx, name, opts.Holder, opts.TTL)
		if ctx.Err() != nil {
			if err == nil && lease.Holder == opts.Holder {
				release(store, lease, log)
			}
			return nil
		}
		switch {
		case err != nil:
			log.Warn("leader: campaign failed; will try again", "error", err)
		case lease.Holder == opts.Holder:
			log.Info("leader: elected", "token", lease.Token)
			done, ferr := lead(ctx, store, lease, sent, opts, log, fn)
			if done {
				return ferr
			}
			if ctx.Err() != nil {
				return nil
			}
			continue // lost: campaign again at once (the lease may be free)
		}
		t := time.NewTimer(opts.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// lead runs fn for one term. done reports that fn returned while the lease
// was held (Run returns err) or that ctx ended.
func lead(ctx context.Context, store Store, lease Lease, sent time.Time, opts Options, log *slog.Logger, fn func(context.Context, Lease) error) (done bool, err error) {
	lctx, cancel := context.WithCancel(WithLease(ctx, lease))
	defer cancel()
	fnDone := make(chan error, 1)
	go func() { fnDone <- fn(lctx, lease) }()

	deadline := sent.Add(opts.TTL - opts.SafetyMargin) // local, monotonic
	renew := opts.TTL / 3
	t := time.NewTimer(min(renew, time.Until(deadline)))
	defer t.Stop()
	lost := func(why string, args ...any) {
		log.Warn("leader: lost the lease: "+why, args...)
		cancel()
	}
	for {
		select {
		case err := <-fnDone:
			if lctx.Err() != nil && ctx.Err() == nil {
				// Cancelled because the lease was lost: campaign again.
				if err != nil && !errors.Is(err, context.Canceled) {
					log.Warn("leader: function ended after the lease was lost", "error", err)
				}
				return false, nil
			}
			release(store, lease, log)
			if ctx.Err() != nil {
				return true, nil
			}
			return true, err
		case <-t.C:
		}
		if lctx.Err() != nil {
			continue // lost or stopping: wait for fn
		}
		if time.Now().After(deadline) {
			lost("renewals failed until the lease's local deadline", "token", lease.Token)
			continue
		}
		rsent := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		cur, err := store.TryAcquire(rctx, lease.Name, lease.Holder, opts.TTL)
		rcancel()
		switch {
		case ctx.Err() != nil:
			cancel()
		case err != nil:
			log.Warn("leader: renewal failed; will try again until the lease's deadline", "error", err, "deadline", time.Until(deadline))
			t.Reset(min(renew/2, max(time.Until(deadline), 0)))
		case !cur.HeldBy(lease.Holder, lease.Token):
			lost("the store has it in another term or holder", "token", lease.Token, "current", cur.Token, "holder", cur.Holder)
		default:
			deadline = rsent.Add(opts.TTL - opts.SafetyMargin)
			t.Reset(min(renew, time.Until(deadline)))
		}
	}
}

// release frees the lease, with a short context of its own (the caller's
// may have ended).
func release(store Store, lease Lease, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := store.Release(ctx, lease.Name, lease.Holder, lease.Token); err != nil && !errors.Is(err, ErrNotHeld) {
		log.Warn("leader: release failed; the lease will expire", "error", err)
	}
}
