package crossbus

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ClaimStatus is what Store.Begin found for a key.
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

// Claim is the result of Store.Begin.
type Claim struct {
	Status ClaimStatus
	// Token identifies the holder when Status is ClaimNew; Complete and
	// Release must present it, so a consumer whose lease ran out cannot
	// complete or release a key that another consumer now holds.
	Token string
}

// ErrLeaseLost is returned by Store.Complete and Store.Release when the
// token no longer holds the key (the lease ran out and another consumer took
// it, or the record expired).
var ErrLeaseLost = errors.New("crossbus: idempotency lease lost")

// Store keeps idempotency records: IN_PROGRESS with a lease while a handler
// runs, COMPLETED with an expiry after it succeeded. Implementations must make
// Begin atomic: of concurrent Begins for a free key exactly one gets ClaimNew.
// stores/storetest has the suite every Store passes.
type Store interface {
	// Begin claims key for lease unless it is held or completed.
	Begin(ctx context.Context, key string, lease time.Duration) (Claim, error)
	// Complete marks key done for ttl.
	Complete(ctx context.Context, key, token string, ttl time.Duration) error
	// Release frees key so a retry can claim it.
	Release(ctx context.Context, key, token string) error
}

// NewToken returns a random claim token, for Store implementations.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// IdempotencyOptions configure idempotent handling. Zero values take the
// documented defaults.
type IdempotencyOptions struct {
	// Key derives the idempotency key. Default: subscription + source + id,
	// the CloudEvents uniqueness rule scoped to one consumer.
	Key func(ctx context.Context, e *Event) string
	// Lease bounds how long a claim survives a consumer that died mid-handler
	// (default 5m). Make it longer than the slowest handler.
	Lease time.Duration
	// TTL is how long a completed record suppresses duplicates (default 24h).
	TTL time.Duration
}

type idempotencyConfig struct {
	store Store
	opts  IdempotencyOptions
}

func (o *IdempotencyOptions) fill() error {
	if o.Lease < 0 || o.TTL < 0 {
		return fmt.Errorf("%w: idempotency lease and TTL must not be negative (got %v, %v)", ErrInvalidOption, o.Lease, o.TTL)
	}
	if o.Lease == 0 {
		o.Lease = 5 * time.Minute
	}
	if o.TTL == 0 {
		o.TTL = 24 * time.Hour
	}
	return nil
}

// WithIdempotency makes the route skip events it already handled: a completed
// duplicate is acked without running the handler, a concurrent duplicate is
// retried later instead of running alongside the first, and a failed handler
// releases the key so the retry runs. The router places it inside retry and
// dead-lettering and outside the route's middleware, whatever the order of
// options.
func WithIdempotency(store Store, opts IdempotencyOptions) RouteOption {
	return func(c *routeConfig) error {
		if store == nil {
			return fmt.Errorf("%w: nil idempotency store", ErrInvalidOption)
		}
		if err := opts.fill(); err != nil {
			return err
		}
		c.idem = &idempotencyConfig{store: store, opts: opts}
		return nil
	}
}

// Idempotent returns the idempotency middleware, for handlers run outside a
// Router (push adapters, tests). Routes should use WithIdempotency.
func Idempotent(store Store, opts IdempotencyOptions) (Middleware, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil idempotency store", ErrInvalidOption)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	return idempotent(&idempotencyConfig{store: store, opts: opts}, "", slog.New(slog.DiscardHandler)), nil
}

// DefaultIdempotencyKey is subscription + source + id.
func DefaultIdempotencyKey(subscription string, e *Event) string {
	return subscription + "\x00" + e.Source() + "\x00" + e.ID()
}

func idempotent(c *idempotencyConfig, subscription string, log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, e *Event) error {
			var key string
			if c.opts.Key != nil {
				key = c.opts.Key(ctx, e)
			} else {
				sub := subscription
				if info, ok := DeliveryInfoFrom(ctx); ok && sub == "" {
					sub = info.Subscription
				}
				key = DefaultIdempotencyKey(sub, e)
			}
			claim, err := c.store.Begin(ctx, key, c.opts.Lease)
			if err != nil {
				return fmt.Errorf("crossbus: idempotency begin: %w", err)
			}
			switch claim.Status {
			case ClaimCompleted:
				return nil
			case ClaimInProgress:
				return fmt.Errorf("event %q: %w", e.ID(), ErrInProgress)
			}
			herr := next.Handle(ctx, e)
			// Settle the claim even if the handler's context was cancelled.
			sctx := context.WithoutCancel(ctx)
			if herr != nil {
				if rerr := c.store.Release(sctx, key, claim.Token); rerr != nil && !errors.Is(rerr, ErrLeaseLost) {
					return errors.Join(herr, fmt.Errorf("crossbus: idempotency release: %w", rerr))
				}
				return herr
			}
			if cerr := c.store.Complete(sctx, key, claim.Token, c.opts.TTL); cerr != nil {
				// The handler succeeded; failing the delivery now would run it
				// again, so the event is acked and the miss only logged: a
				// later duplicate may run the handler once more.
				log.Warn("crossbus: idempotency complete failed", "eventID", e.ID(), "key", key, "error", cerr)
			}
			return nil
		})
	}
}

// MemoryStore is an in-process Store with TTL eviction and a bound on the
// number of records. It suits one process; use a shared store (sqlite,
// postgres, redis, dynamodb) across processes.
type MemoryStore struct {
	tokenPrefix string        // random per store
	tokens      atomic.Uint64 // token counter
	mu          sync.Mutex
	max         int
	now         func() time.Time
	records     map[string]*list.Element
	order       *list.List // oldest first, for eviction
}

type memRecord struct {
	key       string
	completed bool
	token     string
	expires   time.Time
}

// NewMemoryStore returns a MemoryStore holding at most maxRecords records
// (0 means 1,000,000). When full, expired records go first, then the oldest
// completed ones; live claims are never evicted.
func NewMemoryStore(maxRecords int) *MemoryStore {
	if maxRecords <= 0 {
		maxRecords = 1_000_000
	}
	return &MemoryStore{tokenPrefix: NewToken()[:12] + "-", max: maxRecords, now: time.Now, records: map[string]*list.Element{}, order: list.New()}
}

// Len returns the number of records held.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

// Begin implements Store.
func (m *MemoryStore) Begin(ctx context.Context, key string, lease time.Duration) (Claim, error) {
	if err := ctx.Err(); err != nil {
		return Claim{}, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.records[key]; ok {
		r := el.Value.(*memRecord)
		if now.Before(r.expires) {
			if r.completed {
				return Claim{Status: ClaimCompleted}, nil
			}
			return Claim{Status: ClaimInProgress}, nil
		}
		m.order.Remove(el)
		delete(m.records, key)
	}
	if len(m.records) >= m.max && !m.evict(now) {
		return Claim{}, fmt.Errorf("crossbus: memory idempotency store full (%d live claims)", m.max)
	}
	r := &memRecord{key: key, token: m.tokenPrefix + strconv.FormatUint(m.tokens.Add(1), 36), expires: now.Add(lease)}
	m.records[key] = m.order.PushBack(r)
	return Claim{Status: ClaimNew, Token: r.token}, nil
}

// evict frees one record; it reports false when every record is a live claim.
func (m *MemoryStore) evict(now time.Time) bool {
	var oldestDone *list.Element
	for el := m.order.Front(); el != nil; el = el.Next() {
		r := el.Value.(*memRecord)
		if !now.Before(r.expires) {
			m.order.Remove(el)
			delete(m.records, r.key)
			return true
		}
		if r.completed && oldestDone == nil {
			oldestDone = el
			break
		}
	}
	if oldestDone != nil {
		r := oldestDone.Value.(*memRecord)
		m.order.Remove(oldestDone)
		delete(m.records, r.key)
		return true
	}
	return false
}

func (m *MemoryStore) held(key, token string) (*list.Element, *memRecord, error) {
	el, ok := m.records[key]
	if !ok {
		return nil, nil, fmt.Errorf("key %q: %w", key, ErrLeaseLost)
	}
	r := el.Value.(*memRecord)
	if r.completed || r.token != token || !m.now().Before(r.expires) {
		return nil, nil, fmt.Errorf("key %q: %w", key, ErrLeaseLost)
	}
	return el, r, nil
}

// Complete implements Store.
func (m *MemoryStore) Complete(ctx context.Context, key, token string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, r, err := m.held(key, token)
	if err != nil {
		return err
	}
	r.completed = true
	r.token = ""
	r.expires = m.now().Add(ttl)
	m.order.MoveToBack(el)
	return nil
}

// Release implements Store.
func (m *MemoryStore) Release(ctx context.Context, key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, _, err := m.held(key, token)
	if err != nil {
		return err
	}
	m.order.Remove(el)
	delete(m.records, key)
	return nil
}
