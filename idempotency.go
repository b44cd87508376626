package crossbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// ClaimStatus is what IdempotencyStore.Begin found for a key.
type ClaimStatus int

const (
	// ClaimNew: no live record; the caller now holds the key (IN_PROGRESS)
	// until Complete, Release or the lease's end.
	ClaimNew ClaimStatus = iota + 1
	// ClaimInProgress: another consumer holds the key and its lease is live.
	ClaimInProgress
	// ClaimCompleted: the event was handled; the record has not expired.
	ClaimCompleted
)

func (s ClaimStatus) String() string {
	switch s {
	case ClaimNew:
		return "new"
	case ClaimInProgress:
		return "in progress"
	case ClaimCompleted:
		return "completed"
	}
	return fmt.Sprintf("ClaimStatus(%d)", int(s))
}

// Claim is the result of IdempotencyStore.Begin.
type Claim struct {
	Status ClaimStatus
	// Token identifies the holder when Status is ClaimNew; Complete and
	// Release must present it, so a consumer whose lease ran out cannot
	// complete or release a key that another consumer now holds.
	Token string
}

// IdempotencyStore keeps idempotency records: IN_PROGRESS with a lease while
// a handler runs, COMPLETED with an expiry after it succeeded.
// Implementations must make Begin atomic: of concurrent Begins for a free key
// exactly one gets ClaimNew. stores/storetest has the suite every store
// passes.
type IdempotencyStore interface {
	// Begin claims key for lease unless it is held or completed.
	Begin(ctx context.Context, key string, lease time.Duration) (Claim, error)
	// Renew extends a held claim's lease to lease from now. The portable
	// layer renews while the handler runs, so a short lease both outlives
	// slow handlers and frees the key soon after a consumer dies.
	Renew(ctx context.Context, key, token string, lease time.Duration) error
	// Complete marks key done for ttl.
	Complete(ctx context.Context, key, token string, ttl time.Duration) error
	// Release frees key so a retry can claim it.
	Release(ctx context.Context, key, token string) error
}

// InboxStore is an IdempotencyStore kept in the same database as the
// handler's own state, so that the two commit together: a transactional
// inbox. After a crash an event is either applied and marked completed, or
// neither. Routes use it with IdempotencyOptions.Transactional.
type InboxStore interface {
	IdempotencyStore
	// CompleteInTx begins a transaction, calls fn with a context that
	// carries it (the store's package tells how a handler reaches it),
	// and, when fn returns nil, marks key completed for ttl in the same
	// transaction and commits. When fn fails, or token no longer holds
	// key (ErrLeaseLost), the transaction is rolled back: none of fn's
	// writes remain. It returns fn's error unchanged, or the store's.
	CompleteInTx(ctx context.Context, key, token string, ttl time.Duration, fn func(ctx context.Context) error) error
}

// Defaults of IdempotencyOptions.
const (
	defaultIdempotencyLease = 15 * time.Second
	defaultIdempotencyTTL   = 24 * time.Hour
)

// IdempotencyOptions configure idempotent handling. Zero values take the
// documented defaults.
type IdempotencyOptions struct {
	// Key derives the idempotency key. Default: subscription + source + id,
	// the CloudEvents uniqueness rule scoped to one consumer.
	Key func(ctx context.Context, e *Event) string
	// Lease bounds how long a claim survives a consumer that died
	// mid-handler (default 15s). It is renewed every
	// third of itself while the handler runs, so it need not cover the
	// slowest handler.
	Lease time.Duration
	// TTL is how long a completed record suppresses duplicates (default
	// 24h).
	TTL time.Duration
	// Transactional runs the handler inside a transaction of the store,
	// which must implement InboxStore, and marks the event completed in
	// that transaction: the handler's writes through the transaction and
	// the idempotency record commit together (a transactional inbox). Use
	// it when the handler's effect lives in the store's database; a
	// handler that writes elsewhere gains nothing from it. Batch routes
	// take per-event claims and complete them after the batch, without a
	// transaction.
	Transactional bool
}

type idempotencyConfig struct {
	store IdempotencyStore
	inbox InboxStore // set when opts.Transactional
	opts  IdempotencyOptions
	held  sync.Pool // *heldClaim, with their renewal timers, for reuse
}

func newIdempotencyConfig(store IdempotencyStore, opts IdempotencyOptions) (*idempotencyConfig, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil idempotency store", ErrInvalidOption)
	}
	if opts.Lease < 0 || opts.TTL < 0 {
		return nil, fmt.Errorf("%w: idempotency lease and TTL must not be negative (got %v, %v)", ErrInvalidOption, opts.Lease, opts.TTL)
	}
	opts.Lease = cmp.Or(opts.Lease, defaultIdempotencyLease)
	opts.TTL = cmp.Or(opts.TTL, defaultIdempotencyTTL)
	c := &idempotencyConfig{store: store, opts: opts}
	if opts.Transactional {
		inbox, ok := store.(InboxStore)
		if !ok {
			return nil, fmt.Errorf("%w: IdempotencyOptions.Transactional needs a store that implements InboxStore; %T does not", ErrInvalidOption, store)
		}
		c.inbox = inbox
	}
	return c, nil
}

// WithIdempotency makes the route skip events it already handled: a completed
// duplicate is acked without running the handler, a concurrent duplicate is
// retried later instead of running alongside the first, and a failed handler
// releases the key so the retry runs. The router places it inside retry and
// dead-lettering and outside the route's middleware, whatever the order of
// options.
func WithIdempotency(store IdempotencyStore, opts IdempotencyOptions) RouteOption {
	return func(c *routeConfig) error {
		ic, err := newIdempotencyConfig(store, opts)
		if err != nil {
			return err
		}
		c.idem = ic
		return nil
	}
}

// Idempotent returns the idempotency middleware, for handlers run outside a
// Router (push adapters, tests). Routes should use WithIdempotency.
func Idempotent(store IdempotencyStore, opts IdempotencyOptions) (Middleware, error) {
	ic, err := newIdempotencyConfig(store, opts)
	if err != nil {
		return nil, err
	}
	return idempotent(ic, "", slog.New(slog.DiscardHandler)), nil
}

// defaultIdempotencyKey is subscription + source + id.
func defaultIdempotencyKey(subscription string, e *Event) string {
	ctx, ok := e.Context.(*event.EventContextV1)
	if !ok || ctx == nil {
		return subscription + "\x00" + sourceOf(e) + "\x00" + e.ID()
	}
	return subscription + "\x00" + sourceKey(&ctx.Source) + "\x00" + ctx.ID
}

// sourceKey is a source's text for keys: a path-only source (the usual
// case) as it is, without formatting the URL.
func sourceKey(u *types.URIRef) string {
	if u.Scheme == "" && u.Opaque == "" && u.User == nil && u.Host == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery {
		if u.RawPath != "" {
			return u.RawPath
		}
		return u.Path
	}
	return u.String()
}

// key derives e's idempotency key for subscription.
func (c *idempotencyConfig) key(ctx context.Context, subscription string, e *Event) string {
	if c.opts.Key != nil {
		return c.opts.Key(ctx, e)
	}
	if subscription == "" {
		if info, ok := DeliveryInfoFrom(ctx); ok {
			subscription = info.Subscription
		}
	}
	return defaultIdempotencyKey(subscription, e)
}

// The claim protocol, used by per-event routes (idempotent) and batch routes
// (claimBatch, settleClaims): begin claims the key; the handler runs only
// for a new claim, with the lease renewed meanwhile; finish completes the
// key after success and releases it after failure.

// heldClaim is a claim the handler runs under; its lease is renewed every
// third of the lease until finish.
type heldClaim struct {
	c     *idempotencyConfig
	key   string
	token string
	log   *slog.Logger

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// begin claims key. run reports whether the handler may run (a held claim is
// returned); otherwise err is nil for a completed duplicate (ack it) or says
// why to retry (ErrInProgress, or the store's failure).
func (c *idempotencyConfig) begin(ctx context.Context, key string, e *Event, log *slog.Logger) (h *heldClaim, run bool, err error) {
	claim, err := c.store.Begin(ctx, key, c.opts.Lease)
	if err != nil {
		return nil, false, errorf("idempotency begin for event %q: %w", e.ID(), err)
	}
	switch claim.Status {
	case ClaimCompleted:
		return nil, false, nil
	case ClaimInProgress:
		return nil, false, fmt.Errorf("%w: event %q", ErrInProgress, e.ID())
	}
	if v, ok := c.held.Get().(*heldClaim); ok {
		h = v
		h.key, h.token, h.log, h.stopped = key, claim.Token, log, false
		h.timer.Reset(c.opts.Lease / 3)
	} else {
		h = &heldClaim{c: c, key: key, token: claim.Token, log: log}
		h.timer = time.AfterFunc(c.opts.Lease/3, h.renew)
	}
	return h, true, nil
}

// renew extends the lease and schedules the next renewal.
func (h *heldClaim) renew() {
	lease := h.c.opts.Lease
	ctx, cancel := context.WithTimeout(context.Background(), lease/3)
	err := h.c.store.Renew(ctx, h.key, h.token, lease)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	if err != nil {
		// Lost (another consumer may take the key) or the store failed:
		// try again; finish reports a lost lease if it stays lost.
		h.log.Warn("crossbus: idempotency lease renewal failed", "key", h.key, "error", err)
	}
	h.timer.Reset(lease / 3)
}

// stopRenewal stops renewing the lease; it reports whether no renewal can
// still be running, so the claim may be recycled once the caller is done.
func (h *heldClaim) stopRenewal() (idle bool) {
	h.mu.Lock()
	h.stopped = true
	idle = h.timer.Stop()
	h.mu.Unlock()
	return idle
}

// recycle returns a stopped claim whose renewal was idle for reuse.
func (h *heldClaim) recycle(idle bool) {
	if idle {
		h.key, h.token, h.log = "", "", nil
		h.c.held.Put(h)
	}
}

// finish settles the claim by the handler's result and returns the error to
// report for the delivery (herr, or herr joined with a failed release).
func (h *heldClaim) finish(ctx context.Context, e *Event, herr error) error {
	defer h.recycle(h.stopRenewal())
	// Settle the claim even if the handler's context was cancelled.
	sctx := context.Background()
	if herr != nil {
		if rerr := h.c.store.Release(sctx, h.key, h.token); rerr != nil && !errors.Is(rerr, ErrLeaseLost) {
			return errors.Join(herr, errorf("idempotency release for event %q: %w", e.ID(), rerr))
		}
		return herr
	}
	if cerr := h.c.store.Complete(sctx, h.key, h.token, h.c.opts.TTL); cerr != nil {
		// The handler succeeded; failing the delivery now would run it
		// again, so the event is acked and the miss only logged: a later
		// duplicate may run the handler once more (the transactional
		// inbox closes this gap).
		h.log.Warn("crossbus: idempotency complete failed", "eventID", e.ID(), "key", h.key, "error", cerr)
	}
	return nil
}

// runInTx runs the handler inside the inbox store's transaction, completing
// the key in it.
func (h *heldClaim) runInTx(ctx context.Context, e *Event, next Handler) error {
	var herr error
	err := h.c.inbox.CompleteInTx(ctx, h.key, h.token, h.c.opts.TTL, func(tctx context.Context) error {
		herr = handleRecovered(tctx, next, e)
		return herr
	})
	if herr != nil {
		return h.finish(ctx, e, herr) // rolled back: release the key for the retry
	}
	defer h.recycle(h.stopRenewal())
	if err == nil {
		return nil // completed in the handler's transaction
	}
	if errors.Is(err, ErrLeaseLost) {
		// Rolled back: another consumer holds or finished the key.
		return errorf("%w: event %q: lease lost before commit, handler's writes rolled back: %w", ErrInProgress, e.ID(), err)
	}
	rerr := h.c.store.Release(context.Background(), h.key, h.token)
	if rerr != nil && !errors.Is(rerr, ErrLeaseLost) {
		return errors.Join(errorf("idempotency commit for event %q: %w", e.ID(), err), rerr)
	}
	return errorf("idempotency commit for event %q: %w", e.ID(), err)
}

// handleRecovered runs h, turning a panic into an error (matching ErrPanic)
// so that a claim is always released or completed.
func handleRecovered(ctx context.Context, h Handler, e *Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, e)
}

func idempotent(c *idempotencyConfig, subscription string, log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, e *Event) error {
			h, run, err := c.begin(ctx, c.key(ctx, subscription, e), e, log)
			if !run {
				return err
			}
			if c.inbox != nil {
				return h.runInTx(ctx, e, next)
			}
			return h.finish(ctx, e, handleRecovered(ctx, next, e))
		})
	}
}
