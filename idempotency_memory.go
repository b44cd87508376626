package crossbus

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus/internal/claimtoken"
)

// MemoryIdempotencyStore is an in-process IdempotencyStore with TTL eviction
// and a bound on the number of records. It suits one process; use a shared
// store (sqlite, postgres, redis, dynamodb) across processes.
//
// Records are values in one map keyed by a 128-bit keyed hash of the key
// (two maphash seeds chosen per store; two distinct keys share a hash with a
// probability of about 2^-128 per pair), and keys are remembered in claim
// order: a claim allocates nothing but its token, and the records hold no
// pointers, so a million of them cost the garbage collector nothing.
type MemoryIdempotencyStore struct {
	prefix string // random per store: the tokens' prefix
	seeds  [2]maphash.Seed
	mu     sync.Mutex
	max    int
	now    func() time.Time
	seq    uint64 // claims so far: the next token's number
	recs   map[keyHash]memRecord
	order  []claimRef // keys in claim order, oldest first from head
	head   int
}

// keyHash is a key's 128-bit keyed hash.
type keyHash [2]uint64

func (m *MemoryIdempotencyStore) hash(key string) keyHash {
	return keyHash{maphash.String(m.seeds[0], key), maphash.String(m.seeds[1], key)}
}

type memRecord struct {
	seq       uint64 // the claim's number (its token)
	expires   int64  // unix nanoseconds
	completed bool
}

type claimRef struct {
	key keyHash
	seq uint64
}

// NewMemoryIdempotencyStore returns a MemoryIdempotencyStore holding at most
// maxRecords records (0 means 1,000,000). When full, expired records go
// first, then the oldest completed ones; live claims are never evicted.
func NewMemoryIdempotencyStore(maxRecords int) *MemoryIdempotencyStore {
	if maxRecords <= 0 {
		maxRecords = 1_000_000
	}
	return &MemoryIdempotencyStore{prefix: claimtoken.New()[:12] + "-", seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		max: maxRecords, now: time.Now, recs: map[keyHash]memRecord{}}
}

// Len returns the number of records held.
func (m *MemoryIdempotencyStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}

// Begin implements IdempotencyStore.
func (m *MemoryIdempotencyStore) Begin(ctx context.Context, key string, lease time.Duration) (Claim, error) {
	if err := ctx.Err(); err != nil {
		return Claim{}, err
	}
	now := m.now().UnixNano()
	k := m.hash(key)
	m.mu.Lock()
	if r, ok := m.recs[k]; ok {
		if now < r.expires {
			m.mu.Unlock()
			if r.completed {
				return Claim{Status: ClaimCompleted}, nil
			}
			return Claim{Status: ClaimInProgress}, nil
		}
		delete(m.recs, k)
	}
	if len(m.recs) >= m.max && !m.evict(now) {
		m.mu.Unlock()
		return Claim{}, errorf("memory idempotency store full (%d live claims)", m.max)
	}
	m.seq++
	seq := m.seq
	m.recs[k] = memRecord{seq: seq, expires: now + int64(lease)}
	m.order = append(m.order, claimRef{key: k, seq: seq})
	m.mu.Unlock()
	return Claim{Status: ClaimNew, Token: m.prefix + strconv.FormatUint(seq, 36)}, nil
}

// evict frees one record (m.mu held); it reports false when every record is
// a live claim. It looks at the oldest records first: an expired one goes at
// once, else the oldest completed one.
func (m *MemoryIdempotencyStore) evict(now int64) bool {
	victim := -1
	for i := m.head; i < len(m.order); i++ {
		ref := m.order[i]
		r, ok := m.recs[ref.key]
		if !ok || r.seq != ref.seq {
			continue // released, or claimed again later: a stale place
		}
		if now >= r.expires {
			victim = i
			break
		}
		if r.completed && victim < 0 {
			victim = i
		}
	}
	m.compact()
	if victim < 0 {
		return false
	}
	delete(m.recs, m.order[victim].key)
	m.order[victim] = claimRef{}
	return true
}

// compact drops the places of records that are gone from the front of the
// claim order, and moves the rest down when the front holds most of it.
func (m *MemoryIdempotencyStore) compact() {
	for m.head < len(m.order) {
		ref := m.order[m.head]
		if r, ok := m.recs[ref.key]; ok && r.seq == ref.seq {
			break
		}
		m.order[m.head] = claimRef{}
		m.head++
	}
	if m.head > 0 && m.head*2 >= len(m.order) {
		n := copy(m.order, m.order[m.head:])
		clear(m.order[n:])
		m.order, m.head = m.order[:n], 0
	}
}

// held finds key's live claim by token at now (m.mu held).
func (m *MemoryIdempotencyStore) held(k keyHash, key, token string, now time.Time) (memRecord, error) {
	r, ok := m.recs[k]
	if !ok || r.completed || !m.tokenIs(token, r.seq) || now.UnixNano() >= r.expires {
		return r, fmt.Errorf("key %q: %w", key, ErrLeaseLost)
	}
	return r, nil
}

// tokenIs reports whether token is claim seq's, without building it.
func (m *MemoryIdempotencyStore) tokenIs(token string, seq uint64) bool {
	rest, ok := strings.CutPrefix(token, m.prefix)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(rest, 36, 64)
	return err == nil && n == seq
}

// Renew implements IdempotencyStore.
func (m *MemoryIdempotencyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	now, k := m.now(), m.hash(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.held(k, key, token, now)
	if err != nil {
		return err
	}
	r.expires = now.Add(lease).UnixNano()
	m.recs[k] = r
	return nil
}

// Complete implements IdempotencyStore.
func (m *MemoryIdempotencyStore) Complete(ctx context.Context, key, token string, ttl time.Duration) error {
	now, k := m.now(), m.hash(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.held(k, key, token, now)
	if err != nil {
		return err
	}
	m.recs[k] = memRecord{seq: r.seq, completed: true, expires: now.Add(ttl).UnixNano()}
	return nil
}

// Release implements IdempotencyStore.
func (m *MemoryIdempotencyStore) Release(ctx context.Context, key, token string) error {
	now, k := m.now(), m.hash(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.held(k, key, token, now); err != nil {
		return err
	}
	delete(m.recs, k)
	return nil
}
