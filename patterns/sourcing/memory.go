package sourcing

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
)

// MemoryOptions configure a MemoryStore. The zero value is valid.
type MemoryOptions struct {
	// Outbox, when set, enqueues each appended event for relay (see Relay)
	// in the same critical section that records it.
	Outbox OutboxRoute
}

// MemoryStore is an in-process Store, SnapshotStore, CheckpointStore and
// Outbox. It keeps every guarantee of the package but nothing survives the
// process: use it for tests and single-process tools, and stores/sqlite where
// state must outlive a restart.
type MemoryStore struct {
	opts MemoryOptions

	mu          sync.RWMutex
	log         []Record // log[i] has Position i+1; records are never modified
	streams     map[string]*memStream
	snapshots   map[string]Snapshot
	checkpoints map[string]uint64
	outbox      []OutboxMessage // unsent, in ID order
	nextOutbox  uint64
	changed     chan struct{}
}

type memStream struct {
	positions []uint64          // positions[v-1] is the position of version v
	ids       map[string]uint64 // event id -> version
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	return &MemoryStore{opts: opts, streams: map[string]*memStream{}, snapshots: map[string]Snapshot{},
		checkpoints: map[string]uint64{}, changed: make(chan struct{})}
}

// Changed implements Notifier.
func (m *MemoryStore) Changed() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.changed
}

// notifyLocked wakes waiters; m.mu must be held for writing.
func (m *MemoryStore) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Append implements Store.
func (m *MemoryStore) Append(ctx context.Context, stream string, expected Expected, events ...*crossbus.Event) (AppendResult, error) {
	if err := ValidateAppend(stream, events); err != nil {
		return AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	// Copy outside the lock: the caller may reuse its events.
	copies := make([]crossbus.Event, len(events))
	for i, e := range events {
		copies[i] = e.Clone()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.streams[stream]
	current := uint64(0)
	if st != nil {
		current = uint64(len(st.positions))
	}
	// Deduplicate by event id, within the stream and within the call.
	fresh := make([]int, 0, len(copies))
	seen := map[string]bool{}
	for i := range copies {
		id := copies[i].ID()
		if seen[id] {
			continue
		}
		seen[id] = true
		if st != nil {
			if _, dup := st.ids[id]; dup {
				continue
			}
		}
		fresh = append(fresh, i)
	}
	res := AppendResult{Version: current, Duplicates: len(copies) - len(fresh)}
	if len(fresh) == 0 && len(copies) > 0 {
		return res, nil // an idempotent retry: every event is already recorded
	}
	if !expected.Allows(current) {
		return AppendResult{}, &ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	if len(fresh) == 0 {
		return res, nil
	}
	if st == nil {
		st = &memStream{ids: map[string]uint64{}}
		m.streams[stream] = st
	}
	now := time.Now().UTC()
	for _, i := range fresh {
		e := &copies[i]
		pos := uint64(len(m.log)) + 1
		ver := uint64(len(st.positions)) + 1
		m.log = append(m.log, Record{Stream: stream, Version: ver, Position: pos, Recorded: now, Event: e})
		st.positions = append(st.positions, pos)
		st.ids[e.ID()] = ver
		if res.FirstPosition == 0 {
			res.FirstPosition = pos
		}
		res.LastPosition = pos
		if m.opts.Outbox != nil {
			if topic := m.opts.Outbox(stream, e); topic != "" {
				m.nextOutbox++
				m.outbox = append(m.outbox, OutboxMessage{ID: m.nextOutbox, Topic: topic, Stream: stream, Version: ver, Event: e, Enqueued: now})
			}
		}
	}
	res.Version = uint64(len(st.positions))
	res.Appended = len(fresh)
	m.notifyLocked()
	return res, nil
}

// ReadStream implements Store.
func (m *MemoryStore) ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if from == 0 {
			from = 1
		}
		m.mu.RLock()
		var positions []uint64
		if st := m.streams[stream]; st != nil {
			positions = st.positions[:len(st.positions):len(st.positions)]
		}
		log := m.log[:len(m.log):len(m.log)]
		m.mu.RUnlock()
		for v := from; v <= uint64(len(positions)); v++ {
			if v%256 == 0 {
				if err := ctx.Err(); err != nil {
					yield(Record{}, err)
					return
				}
			}
			if !yield(cloneRecord(log[positions[v-1]-1]), nil) {
				return
			}
		}
	}
}

// ReadAll implements Store.
func (m *MemoryStore) ReadAll(ctx context.Context, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if from == 0 {
			from = 1
		}
		m.mu.RLock()
		log := m.log[:len(m.log):len(m.log)] // records up to here never change
		m.mu.RUnlock()
		if err := ctx.Err(); err != nil {
			yield(Record{}, err)
			return
		}
		for p := from; p <= uint64(len(log)); p++ {
			if p%256 == 0 {
				if err := ctx.Err(); err != nil {
					yield(Record{}, err)
					return
				}
			}
			if !yield(cloneRecord(log[p-1]), nil) {
				return
			}
		}
	}
}

func cloneRecord(r Record) Record {
	e := r.Event.Clone()
	r.Event = &e
	return r
}

// StreamVersion implements Store.
func (m *MemoryStore) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if st := m.streams[stream]; st != nil {
		return uint64(len(st.positions)), nil
	}
	return 0, nil
}

// Head implements Store.
func (m *MemoryStore) Head(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return uint64(len(m.log)), nil
}

// SaveSnapshot implements SnapshotStore.
func (m *MemoryStore) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if s.Stream == "" {
		return fmt.Errorf("%w: snapshot has no stream name", ErrInvalidStream)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Taken.IsZero() {
		s.Taken = time.Now().UTC()
	}
	s.State = append([]byte(nil), s.State...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.snapshots[s.Stream]; ok && old.Version > s.Version {
		return nil
	}
	m.snapshots[s.Stream] = s
	return nil
}

// LoadSnapshot implements SnapshotStore.
func (m *MemoryStore) LoadSnapshot(ctx context.Context, stream string) (Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.snapshots[stream]
	s.State = append([]byte(nil), s.State...)
	return s, ok, nil
}

// Checkpoint implements CheckpointStore.
func (m *MemoryStore) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.checkpoints[name], nil
}

// SaveCheckpoint implements CheckpointStore.
func (m *MemoryStore) SaveCheckpoint(ctx context.Context, name string, position uint64) error {
	if name == "" {
		return fmt.Errorf("sourcing: checkpoint name is empty: %w", crossbus.ErrInvalidOption)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkpoints[name] = position
	return nil
}

// Enqueue adds messages to the outbox outside an append (for state kept in
// memory next to the store). stream orders them; it may be "".
func (m *MemoryStore) Enqueue(ctx context.Context, topic, stream string, events ...*crossbus.Event) error {
	if topic == "" {
		return fmt.Errorf("sourcing: outbox topic is empty: %w", crossbus.ErrInvalidOption)
	}
	for i, e := range events {
		if e == nil {
			return fmt.Errorf("sourcing: enqueue: event %d is nil: %w", i, crossbus.ErrInvalidEvent)
		}
		if err := crossbus.Validate(e); err != nil {
			return fmt.Errorf("sourcing: enqueue: event %d: %w", i, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events {
		c := e.Clone()
		m.nextOutbox++
		m.outbox = append(m.outbox, OutboxMessage{ID: m.nextOutbox, Topic: topic, Stream: stream, Event: &c, Enqueued: now})
	}
	m.notifyLocked()
	return nil
}

// PendingOutbox implements Outbox.
func (m *MemoryStore) PendingOutbox(ctx context.Context, limit int) ([]OutboxMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := min(limit, len(m.outbox))
	if limit <= 0 {
		n = len(m.outbox)
	}
	out := make([]OutboxMessage, n)
	for i := range out {
		out[i] = m.outbox[i]
		c := m.outbox[i].Event.Clone()
		out[i].Event = &c
	}
	return out, nil
}

// MarkSent implements Outbox.
func (m *MemoryStore) MarkSent(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sent := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		sent[id] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := m.outbox[:0]
	for _, msg := range m.outbox {
		if !sent[msg.ID] {
			kept = append(kept, msg)
		}
	}
	clear(m.outbox[len(kept):])
	m.outbox = kept
	return nil
}
