package sbtest

import (
	"fmt"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// sendTarget is what a sender link or the schedule-message operation puts
// messages into: a queue or a topic.
type sendTarget interface {
	entityName() string
	// send accepts messages all or nothing (a batch is atomic).
	send(ms []*amqp.Message, now time.Time) *amqpError
	// schedule holds each message until its x-opt-scheduled-enqueue-time
	// and returns the sequence numbers that cancel them.
	schedule(ms []*amqp.Message, now time.Time) ([]int64, *amqpError)
	cancel(seqs []int64)
	scheduledCount() int
}

const (
	annScheduledTime = "x-opt-scheduled-enqueue-time"
	annSequence      = "x-opt-sequence-number"
	annEnqueuedTime  = "x-opt-enqueued-time"
	annLockedUntil   = "x-opt-locked-until"
	annLockToken     = "x-opt-lock-token"
	annPartitionKey  = "x-opt-partition-key"
	annMessageState  = "x-opt-message-state"
)

// scheduledTime returns a message's requested enqueue time, if in the future.
func scheduledTime(m *amqp.Message, now time.Time) (time.Time, bool) {
	var t time.Time
	switch v := m.Annotations[annScheduledTime].(type) {
	case time.Time:
		t = v
	case *time.Time:
		if v != nil {
			t = *v
		}
	}
	return t, !t.IsZero() && t.After(now)
}

func messageID(m *amqp.Message) string {
	if m.Properties == nil || m.Properties.MessageID == nil {
		return ""
	}
	if s, ok := m.Properties.MessageID.(string); ok {
		return s
	}
	return fmt.Sprint(m.Properties.MessageID)
}

func sessionID(m *amqp.Message) (string, bool) {
	if m.Properties == nil || m.Properties.GroupID == nil {
		return "", false
	}
	return *m.Properties.GroupID, true
}

// schedSet is an entity's scheduled messages by sequence number; the
// entity's lock guards it.
type schedSet struct{ m map[int64]*amqp.Message }

func (s *schedSet) init() { s.m = map[int64]*amqp.Message{} }

// dedup remembers message ids for the duplicate-detection window.
type dedup struct {
	window time.Duration
	seen   map[string]time.Time
	order  []dedupEntry
}

type dedupEntry struct {
	id string
	at time.Time
}

func newDedup(w time.Duration) *dedup { return &dedup{window: w, seen: map[string]time.Time{}} }

// duplicate reports whether id was seen within the window, and records it.
func (d *dedup) duplicate(id string, now time.Time) bool {
	if d == nil || id == "" {
		return false
	}
	for len(d.order) > 0 && now.Sub(d.order[0].at) > d.window {
		if d.seen[d.order[0].id].Equal(d.order[0].at) {
			delete(d.seen, d.order[0].id)
		}
		d.order = d.order[1:]
	}
	if at, ok := d.seen[id]; ok && now.Sub(at) <= d.window {
		return true
	}
	d.seen[id] = now
	d.order = append(d.order, dedupEntry{id, now})
	return false
}

// queueSends is the sending side of a queue.
type queueSends struct {
	st    *store
	dedup *dedup
	sched schedSet
}

func (q *queueSends) entityName() string { return q.st.name }

func (q *queueSends) send(ms []*amqp.Message, now time.Time) *amqpError {
	st := q.st
	if st.opts.RequiresSession {
		for _, m := range ms {
			if _, ok := sessionID(m); !ok {
				return &amqpError{Condition: "amqp:not-allowed", Description: fmt.Sprintf(
					"The SessionId was not set on a message, and it cannot be sent to the entity '%s'. Entities that have session support enabled can only receive messages that have the SessionId set to a valid value.", st.name)}
			}
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return notFound(st.srv, st.name)
	}
	for _, m := range ms {
		if q.dedup.duplicate(messageID(m), now) {
			continue
		}
		st.seq++
		if at, ok := scheduledTime(m, now); ok {
			q.sched.m[st.seq] = m
			st.srv.addScheduled(scheduled{at: at, seq: st.seq, target: q})
			continue
		}
		st.addLocked(st.seq, m, now)
	}
	st.dispatchLocked()
	return nil
}

func (q *queueSends) schedule(ms []*amqp.Message, now time.Time) ([]int64, *amqpError) {
	st := q.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return nil, notFound(st.srv, st.name)
	}
	seqs := make([]int64, 0, len(ms))
	for _, m := range ms {
		st.seq++
		at, _ := scheduledTime(m, time.Time{})
		q.sched.m[st.seq] = m
		st.srv.addScheduled(scheduled{at: at, seq: st.seq, target: q})
		seqs = append(seqs, st.seq)
	}
	return seqs, nil
}

func (q *queueSends) fire(seq int64) {
	st := q.st
	st.mu.Lock()
	defer st.mu.Unlock()
	m, ok := q.sched.m[seq]
	if !ok || st.deleted {
		return // cancelled, or the queue was deleted
	}
	delete(q.sched.m, seq)
	st.addLocked(seq, m, time.Now())
	st.dispatchLocked()
}

func (q *queueSends) cancel(seqs []int64) {
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	for _, s := range seqs {
		delete(q.sched.m, s)
	}
}

func (q *queueSends) scheduledCount() int {
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	return len(q.sched.m)
}

// topic fans messages out to its subscriptions.
type topic struct {
	srv   *Server
	name  string
	opts  EntityOptions
	mu    sync.Mutex
	seq   int64
	subs  map[string]*store // copy-on-write under mu
	dedup *dedup
	sched schedSet
	// deleted: the topic was deleted (see Server.DeleteTopic).
	deleted bool
}

func (t *topic) entityName() string { return t.name }

func (t *topic) send(ms []*amqp.Message, now time.Time) *amqpError {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return notFound(t.srv, t.name)
	}
	for _, m := range ms {
		if t.dedup.duplicate(messageID(m), now) {
			continue
		}
		t.seq++
		if at, ok := scheduledTime(m, now); ok {
			t.sched.m[t.seq] = m
			t.srv.addScheduled(scheduled{at: at, seq: t.seq, target: t})
			continue
		}
		t.fanOutLocked(t.seq, m, now)
	}
	return nil
}

// fanOutLocked puts a copy of m in every subscription. A subscription that
// requires sessions does not take a message without a SessionID.
func (t *topic) fanOutLocked(seq int64, m *amqp.Message, now time.Time) {
	_, hasSession := sessionID(m)
	for _, st := range t.subs {
		if st.opts.RequiresSession && !hasSession || !selects(st.rules, m) {
			continue
		}
		st.mu.Lock()
		st.addLocked(seq, m, now)
		st.dispatchLocked()
		st.mu.Unlock()
	}
}

func (t *topic) schedule(ms []*amqp.Message, now time.Time) ([]int64, *amqpError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return nil, notFound(t.srv, t.name)
	}
	seqs := make([]int64, 0, len(ms))
	for _, m := range ms {
		t.seq++
		at, _ := scheduledTime(m, time.Time{})
		t.sched.m[t.seq] = m
		t.srv.addScheduled(scheduled{at: at, seq: t.seq, target: t})
		seqs = append(seqs, t.seq)
	}
	return seqs, nil
}

func (t *topic) fire(seq int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.sched.m[seq]
	if !ok || t.deleted {
		return
	}
	delete(t.sched.m, seq)
	t.fanOutLocked(seq, m, time.Now())
}

func (t *topic) cancel(seqs []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range seqs {
		delete(t.sched.m, s)
	}
}

func (t *topic) scheduledCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sched.m)
}
