package egtest

import (
	"container/heap"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"
)

// message is one event in one queue subscription.
type message struct {
	raw         json.RawMessage
	deliveries  int
	token       string // current lock token; "" when not locked
	lockedUntil time.Time
	lockedAt    time.Time // when the current lock was first taken
	gone        bool
}

// timed is a heap entry: at is when a delayed message becomes available or
// a lock expires. Entries go stale when the message moves on; they are
// checked against the message when popped.
type timed struct {
	at    time.Time
	m     *message
	token string // for lock entries: the lock they expire
}

type timeHeap []timed

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(timed)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = timed{}
	*h = old[:len(old)-1]
	return x
}

// queue holds a subscription's messages: ready ones in order, delayed ones
// and locks by time.
type queue struct {
	ready   []*message
	head    int
	delayed timeHeap
	locks   timeHeap
	locked  map[string]*message
}

func (q *queue) push(m *message) {
	if q.head > 1024 && q.head*2 > len(q.ready) {
		q.ready = append(q.ready[:0], q.ready[q.head:]...)
		q.head = 0
	}
	q.ready = append(q.ready, m)
}

func (q *queue) readyLen() int { return len(q.ready) - q.head }

func (q *queue) pop() *message {
	m := q.ready[q.head]
	q.ready[q.head] = nil
	q.head++
	return m
}

func (q *queue) delay(m *message, at time.Time) { heap.Push(&q.delayed, timed{at: at, m: m}) }

// lock locks m for d under a new token.
func (q *queue) lock(m *message, now time.Time, d time.Duration) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	m.token = base64.StdEncoding.EncodeToString(b[:])
	m.deliveries++
	m.lockedAt = now
	m.lockedUntil = now.Add(d)
	q.locked[m.token] = m
	heap.Push(&q.locks, timed{at: m.lockedUntil, m: m, token: m.token})
	return m.token
}

// renew extends a live lock by d.
func (q *queue) renew(m *message, now time.Time, d time.Duration) {
	m.lockedUntil = now.Add(d)
	heap.Push(&q.locks, timed{at: m.lockedUntil, m: m, token: m.token})
}

// unlock removes m's lock (settled or expired).
func (q *queue) unlock(m *message) {
	delete(q.locked, m.token)
	m.token = ""
}

// live returns the message a token locks, if the lock has not expired.
func (q *queue) live(token string, now time.Time) *message {
	m := q.locked[token]
	if m == nil || !now.Before(m.lockedUntil) {
		return nil
	}
	return m
}

// due moves delayed messages whose time came to ready, and returns the
// messages whose lock expired (the caller requeues or dead-letters them).
func (q *queue) due(now time.Time) (expired []*message) {
	for len(q.delayed) > 0 && !q.delayed[0].at.After(now) {
		t := heap.Pop(&q.delayed).(timed)
		if !t.m.gone {
			q.push(t.m)
		}
	}
	for len(q.locks) > 0 && !q.locks[0].at.After(now) {
		t := heap.Pop(&q.locks).(timed)
		m := t.m
		if m.gone || m.token != t.token || m.lockedUntil.After(now) {
			continue // settled, relocked, or renewed since
		}
		q.unlock(m)
		expired = append(expired, m)
	}
	return expired
}

// next is when the next delayed message or lock is due (zero if none).
func (q *queue) next() time.Time {
	var t time.Time
	if len(q.delayed) > 0 {
		t = q.delayed[0].at
	}
	if len(q.locks) > 0 && (t.IsZero() || q.locks[0].at.Before(t)) {
		t = q.locks[0].at
	}
	return t
}
