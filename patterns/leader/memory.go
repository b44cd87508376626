package leader

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryStore is an in-process Store, for tests and for replicas that are
// goroutines of one process. Expiry is measured on the process's monotonic
// clock.
type MemoryStore struct {
	mu     sync.Mutex
	now    func() time.Time
	leases map[string]*memLease
}

type memLease struct {
	Lease
	expires time.Time // monotonic
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{now: time.Now, leases: map[string]*memLease{}}
}

// TryAcquire implements Store.
func (m *MemoryStore) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	if err := ValidateLease(name, holder, ttl); err != nil {
		return Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	l, ok := m.leases[name]
	if !ok {
		l = &memLease{Lease: Lease{Name: name}}
		m.leases[name] = l
	}
	live := l.Holder != "" && now.Before(l.expires)
	switch {
	case live && l.Holder == holder:
		// Renewal: same term.
	case live:
		return l.Lease, nil
	default:
		l.Holder = holder
		l.Token++
	}
	l.expires = now.Add(ttl)
	l.Expires = l.expires.Round(0)
	return l.Lease, nil
}

// Release implements Store.
func (m *MemoryStore) Release(ctx context.Context, name, holder string, token int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.leases[name]
	if !ok || !l.HeldBy(holder, token) || !m.now().Before(l.expires) {
		return fmt.Errorf("leader: release %q by %q (token %d): %w", name, holder, token, ErrNotHeld)
	}
	l.Holder = ""
	l.expires = time.Time{}
	l.Expires = time.Time{}
	return nil
}

// Current returns the lease name as the store has it (zero Lease when it
// never existed); a lease whose time ran out is reported free.
func (m *MemoryStore) Current(name string) Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.leases[name]
	if !ok {
		return Lease{Name: name}
	}
	out := l.Lease
	if !m.now().Before(l.expires) {
		out.Holder = ""
	}
	return out
}
