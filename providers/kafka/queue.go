package kafka

import (
	"context"
	"sync"

	"github.com/crossbus/crossbus/driver"
)

// queue holds fetched deliveries until Receive hands them out. The fetcher
// waits for room before polling, so pushes never block; deliveries returned
// by Nack go to the front.
type queue struct {
	mu     sync.Mutex
	items  []*delivery
	head   int
	closed bool
	ready  chan struct{} // signalled when items may be available
	space  chan struct{} // signalled when items were taken
}

func newQueue() *queue {
	return &queue{ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (q *queue) push(d *delivery, front bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if front && q.head > 0 {
		q.head--
		q.items[q.head] = d
	} else if front {
		q.items = append(q.items, nil)
		copy(q.items[1:], q.items)
		q.items[0] = d
	} else {
		q.items = append(q.items, d)
	}
	q.mu.Unlock()
	signal(q.ready)
}

// take moves up to len(buf) deliveries into buf, dropping those of
// partitions that are being revoked.
func (q *queue) take(buf []driver.Delivery) int {
	q.mu.Lock()
	n := 0
	start := q.head
	for n < len(buf) && q.head < len(q.items) {
		d := q.items[q.head]
		q.items[q.head] = nil
		q.head++
		if !d.part.handOut() {
			continue
		}
		buf[n] = d
		n++
	}
	removed := q.head > start // taken or dropped: room for the fetcher either way
	more := q.head < len(q.items)
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		m := copy(q.items, q.items[q.head:])
		clear(q.items[m:])
		q.items, q.head = q.items[:m], 0
	}
	q.mu.Unlock()
	if removed {
		signal(q.space)
	}
	if more {
		signal(q.ready) // let another waiting receiver take the rest
	}
	return n
}

// waitRoom blocks until fewer than limit deliveries wait, and returns how
// many more fit (0 once ctx ends).
func (q *queue) waitRoom(ctx context.Context, limit int) int {
	for {
		q.mu.Lock()
		room := limit - (len(q.items) - q.head)
		q.mu.Unlock()
		if room > 0 {
			return room
		}
		select {
		case <-q.space:
		case <-ctx.Done():
			return 0
		}
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	clear(q.items)
	q.items, q.head = nil, 0
	q.mu.Unlock()
}
