package sequence

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/crossbus/crossbus"
)

// Digits is the width of a formatted sequence number: enough for any
// uint64, so that lexical order (how the CloudEvents sequence extension
// compares values) is numeric order.
const Digits = 20

// Format formats n as a zero-padded Digits-digit string.
func Format(n uint64) string {
	var b [Digits]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:])
}

// Parse parses a sequence number, padded or not.
func Parse(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sequence: sequence %q is not a decimal number: %w", s, crossbus.ErrInvalidData)
	}
	return n, nil
}

// Of returns the event's sequence number (the sequence extension)
// and whether it has one. A value that is not a decimal number is an error
// wrapping crossbus.ErrInvalidData.
func Of(e *crossbus.Event) (uint64, bool, error) {
	if crossbus.ExtensionString(e, crossbus.ExtSequence) == "" {
		return 0, false, nil
	}
	n, err := Parse(crossbus.ExtensionString(e, crossbus.ExtSequence))
	if err != nil {
		return 0, true, fmt.Errorf("event %q: %w", e.ID(), err)
	}
	return n, true, nil
}

// Stamper stamps events with a per-key sequence number: the sequence
// extension, formatted with Format, counting from 1 for each
// partition key (events without a key share the key ""). Consumers use it to
// restore order (Resequence) or to skip stale updates (LatestWins).
//
// Stamp events in the order they are published, and publish a key's events
// from one goroutine at a time, so that sequence order is publish order. A
// producer that restarts seeds its counters (Seed) from where it left off —
// for example the last sequence it stored with its own state — or consumers
// see the numbers start again and treat the new events as old. A Stamper
// is safe for concurrent use; its memory grows with the number of keys.
type Stamper struct {
	mu   sync.Mutex
	last map[string]uint64
}

// NewStamper returns a Stamper whose keys all start at 1.
func NewStamper() *Stamper { return &Stamper{last: map[string]uint64{}} }

// Seed sets the last sequence used for key: the next event of key gets
// last+1.
func (s *Stamper) Seed(key string, last uint64) {
	s.mu.Lock()
	s.last[key] = last
	s.mu.Unlock()
}

// Last returns the last sequence stamped for key (0 when none).
func (s *Stamper) Last(key string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[key]
}

// Stamp sets the next sequence of each event's partition key on it, in the
// order given.
func (s *Stamper) Stamp(events ...*crossbus.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		key := crossbus.PartitionKey(e)
		n := s.last[key] + 1
		s.last[key] = n
		e.SetExtension(crossbus.ExtSequence, Format(n))
	}
}

// Store remembers the last applied sequence of each key, for
// LatestWins and Resequence. Implementations must be safe for concurrent
// use; a shared, durable one lets consumers restart and scale out.
type Store interface {
	// Last returns the last applied sequence for key (0 when none).
	Last(ctx context.Context, key string) (uint64, error)
	// Advance records seq as applied for key unless a later one already
	// is; it reports whether it stored seq.
	Advance(ctx context.Context, key string, seq uint64) (bool, error)
}

// MemoryStore is an in-process Store. It keeps one number
// per key, for the life of the process.
type MemoryStore struct {
	mu   sync.Mutex
	last map[string]uint64
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{last: map[string]uint64{}}
}

// Last implements Store.
func (m *MemoryStore) Last(ctx context.Context, key string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[key], nil
}

// Advance implements Store.
func (m *MemoryStore) Advance(ctx context.Context, key string, seq uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.last[key] {
		return false, nil
	}
	m.last[key] = seq
	return true, nil
}

// LatestWins returns middleware for eventually consistent consumers that
// only care about the newest state of each key: an event whose sequence is
// not newer than the last one applied for its partition key is acked without
// running the handler; after the handler succeeds, the event's sequence is
// stored as applied. Events without a sequence run as usual; a malformed
// sequence is a permanent error (dead-lettered).
//
// Within one process the check, the handler and the store update run under a
// per-key lock, so an older event never overwrites a newer one that ran
// concurrently. Across processes that is only so if the route is ordered
// (WithOrdering) or the handler's own write is conditional on the sequence.
func LatestWins(store Store) (crossbus.Middleware, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: LatestWins needs a Store", crossbus.ErrInvalidOption)
	}
	locks := newKeyLocks()
	return func(next crossbus.Handler) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			seq, ok, err := Of(e)
			if err != nil {
				return crossbus.Permanent(err)
			}
			if !ok {
				return next.Handle(ctx, e)
			}
			key := crossbus.PartitionKey(e)
			mu := locks.of(key)
			mu.Lock()
			defer mu.Unlock()
			last, err := store.Last(ctx, key)
			if err != nil {
				return fmt.Errorf("sequence: latest-wins: read last sequence of %q: %w", key, err)
			}
			if seq <= last {
				return nil // stale or duplicate: a newer state is applied
			}
			if err := next.Handle(ctx, e); err != nil {
				return err
			}
			if _, err := store.Advance(context.WithoutCancel(ctx), key, seq); err != nil {
				return fmt.Errorf("sequence: latest-wins: store sequence %d of %q: %w", seq, key, err)
			}
			return nil
		})
	}, nil
}

// keyLocks is a fixed set of mutexes indexed by a hash of the key: bounded
// memory whatever the number of keys.
type keyLocks struct {
	seed  maphash.Seed
	locks [256]sync.Mutex
}

func newKeyLocks() *keyLocks { return &keyLocks{seed: maphash.MakeSeed()} }

func (k *keyLocks) of(key string) *sync.Mutex {
	return &k.locks[maphash.String(k.seed, key)%uint64(len(k.locks))]
}
