package ops

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// MemoryArchiveStore is an ArchiveStore in memory, for tests and for
// services on the in-process provider. It keeps nothing across restarts.
type MemoryArchiveStore struct {
	mu      sync.Mutex
	seq     int64
	events  []ArchivedEvent
	replays map[string]ReplayState
}

// NewMemoryArchiveStore returns an empty store.
func NewMemoryArchiveStore() *MemoryArchiveStore {
	return &MemoryArchiveStore{replays: map[string]ReplayState{}}
}

var _ ArchiveStore = (*MemoryArchiveStore)(nil)

// Append implements ArchiveStore.
func (m *MemoryArchiveStore) Append(_ context.Context, events []ArchivedEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events {
		m.seq++
		e.Seq = m.seq
		e.Event = e.Event.Clone()
		m.events = append(m.events, e)
	}
	return nil
}

func (q ArchiveQuery) match(e *ArchivedEvent) bool {
	return e.Topic == q.Topic && e.Seq > q.AfterSeq && (q.From.IsZero() || !e.Time.Before(q.From)) &&
		(q.To.IsZero() || e.Time.Before(q.To))
}

// Scan implements ArchiveStore.
func (m *MemoryArchiveStore) Scan(_ context.Context, q ArchiveQuery) ([]ArchivedEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ArchivedEvent
	for i := range m.events {
		if q.match(&m.events[i]) {
			e := m.events[i]
			e.Event = e.Event.Clone()
			out = append(out, e)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
	}
	return out, nil
}

// Count implements ArchiveStore.
func (m *MemoryArchiveStore) Count(_ context.Context, q ArchiveQuery) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for i := range m.events {
		if q.match(&m.events[i]) {
			n++
		}
	}
	return n, nil
}

// Trim implements ArchiveStore.
func (m *MemoryArchiveStore) Trim(_ context.Context, olderThan time.Time, maxBytes int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before := len(m.events)
	if !olderThan.IsZero() {
		m.events = slices.DeleteFunc(m.events, func(e ArchivedEvent) bool { return e.Time.Before(olderThan) })
	}
	if maxBytes > 0 {
		var total int64
		for i := range m.events {
			total += int64(driver.EncodedSize(&m.events[i].Event))
		}
		drop := 0
		for total > maxBytes && drop < len(m.events) {
			total -= int64(driver.EncodedSize(&m.events[drop].Event))
			drop++
		}
		m.events = m.events[drop:]
	}
	return int64(before - len(m.events)), nil
}

// Stats implements ArchiveStore.
func (m *MemoryArchiveStore) Stats(context.Context) ([]TopicStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	by := map[string]*TopicStats{}
	var order []string
	for i := range m.events {
		e := &m.events[i]
		s, ok := by[e.Topic]
		if !ok {
			s = &TopicStats{Topic: e.Topic, Oldest: e.Time, Newest: e.Time}
			by[e.Topic] = s
			order = append(order, e.Topic)
		}
		s.Events++
		s.Bytes += int64(driver.EncodedSize(&e.Event))
		if e.Time.Before(s.Oldest) {
			s.Oldest = e.Time
		}
		if e.Time.After(s.Newest) {
			s.Newest = e.Time
		}
	}
	slices.Sort(order)
	out := make([]TopicStats, len(order))
	for i, t := range order {
		out[i] = *by[t]
	}
	return out, nil
}

// SaveReplay implements ArchiveStore.
func (m *MemoryArchiveStore) SaveReplay(_ context.Context, r ReplayState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replays[r.ID] = r
	return nil
}

// LoadReplay implements ArchiveStore.
func (m *MemoryArchiveStore) LoadReplay(_ context.Context, id string) (ReplayState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.replays[id]
	if !ok {
		return ReplayState{}, errorf("%w: no replay %q", ErrNotFound, id)
	}
	return r, nil
}

// Replays implements ArchiveStore.
func (m *MemoryArchiveStore) Replays(context.Context) ([]ReplayState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ReplayState, 0, len(m.replays))
	for _, r := range m.replays {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ReplayState) int { return b.Started.Compare(a.Started) })
	return out, nil
}
