package memory

import (
	"container/heap"

	"github.com/crossbus/crossbus/driver"
)

// message is one event in one subscription's queue.
type message struct {
	ev       *driver.Event
	seq      uint64 // publish order within the subscription
	key      string // partition key, for ordered subscriptions
	attempts int    // deliveries so far
	gen      uint32 // bumped on every delivery; stale handles cannot settle
	state    uint8
	due      int64 // unix nanos: lease deadline (inflight) or availability (delayed)
	index    int   // position in the heap that holds it
}

const (
	stateReady uint8 = iota
	stateInflight
	stateDelayed
	stateDone
)

// seqHeap orders messages by publish sequence: redelivered messages go back
// in front of later ones.
type seqHeap []*message

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *seqHeap) Push(x any)        { m := x.(*message); m.index = len(*h); *h = append(*h, m) }
func (h *seqHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	m.index = -1
	return m
}

// dueHeap orders messages by their due time (lease deadline or delay end).
type dueHeap []*message

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *dueHeap) Push(x any)        { m := x.(*message); m.index = len(*h); *h = append(*h, m) }
func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	m.index = -1
	return m
}

// ring is a FIFO of fresh messages, in publish order.
type ring struct {
	buf  []*message
	head int
	n    int
}

func (r *ring) push(m *message) {
	if r.n == len(r.buf) {
		size := 2 * len(r.buf)
		if size == 0 {
			size = 64
		}
		nb := make([]*message, size)
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = m
	r.n++
}

func (r *ring) peek() *message {
	if r.n == 0 {
		return nil
	}
	return r.buf[r.head]
}

func (r *ring) pop() *message {
	m := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return m
}

// queue holds the state of one subscription (or of its dead-letter queue).
// Every field is guarded by the owning subscription's mutex.
type queue struct {
	fresh    ring    // never delivered, in publish order
	retry    seqHeap // redeliverable now, by publish order
	delayed  dueHeap // nacked with a delay, by availability
	inflight dueHeap // leased, by lease deadline

	// ordered subscriptions: keys with a message in flight or waiting in
	// retry/delayed; fresh messages of those keys are held back.
	ordered bool
	busy    map[string]int
	held    map[string][]*message
}

func (q *queue) backlog() int {
	n := q.fresh.n + len(q.retry) + len(q.delayed) + len(q.inflight)
	for _, h := range q.held {
		n += len(h)
	}
	return n
}

// expire moves leases past their deadline and delays that have elapsed into
// the retry heap.
func (q *queue) expire(now int64) {
	for len(q.inflight) > 0 && q.inflight[0].due <= now {
		m := heap.Pop(&q.inflight).(*message)
		m.state = stateReady
		heap.Push(&q.retry, m)
	}
	for len(q.delayed) > 0 && q.delayed[0].due <= now {
		m := heap.Pop(&q.delayed).(*message)
		m.state = stateReady
		heap.Push(&q.retry, m)
	}
}

// next returns the next deliverable message, or nil.
func (q *queue) next() *message {
	for {
		var m *message
		switch {
		case len(q.retry) > 0 && (q.fresh.n == 0 || q.retry[0].seq < q.fresh.peek().seq):
			m = heap.Pop(&q.retry).(*message)
			return m // a redelivery keeps its key busy already
		case q.fresh.n > 0:
			m = q.fresh.pop()
		default:
			return nil
		}
		if !q.ordered || m.key == "" {
			return m
		}
		if q.busy[m.key] > 0 {
			q.held[m.key] = append(q.held[m.key], m)
			continue
		}
		q.busy[m.key] = 1
		return m
	}
}

// release frees an ordered key once its message is settled, making the next
// held message of the key deliverable.
func (q *queue) release(m *message) {
	if !q.ordered || m.key == "" {
		return
	}
	if h := q.held[m.key]; len(h) > 0 {
		n := h[0]
		h[0] = nil
		if len(h) == 1 {
			delete(q.held, m.key)
		} else {
			q.held[m.key] = h[1:]
		}
		heap.Push(&q.retry, n) // keeps the key busy
		return
	}
	delete(q.busy, m.key)
}

// nextDue is the earliest time a waiting receiver should look again (0: none).
func (q *queue) nextDue() int64 {
	var d int64
	if len(q.inflight) > 0 {
		d = q.inflight[0].due
	}
	if len(q.delayed) > 0 && (d == 0 || q.delayed[0].due < d) {
		d = q.delayed[0].due
	}
	return d
}
