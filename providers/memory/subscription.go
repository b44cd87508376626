package memory

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// errStale is returned when a delivery is settled after its lease ran out
// and the event was handed to another consumer (like a lost message lock).
var errStale = errors.New("memory: delivery lease expired; the event was redelivered")

type subscription struct {
	p     *Provider
	topic string
	name  string

	mu      sync.Mutex
	q       queue // the subscription's events
	dead    queue // its dead-letter sub-queue
	nextSeq uint64

	deleted chan struct{} // closed by delete

	ready chan struct{} // signalled when events may be deliverable
	space chan struct{} // signalled when backlog room appears
	// deadReady wakes dead-letter receivers.
	deadReady chan struct{}
}

func newSubscription(p *Provider, topic, name string, ordered bool) *subscription {
	s := &subscription{p: p, topic: topic, name: name, deleted: make(chan struct{}),
		ready: make(chan struct{}, 1), space: make(chan struct{}, 1), deadReady: make(chan struct{}, 1)}
	s.q.ordered = ordered
	if ordered {
		s.q.busy = map[string]int{}
		s.q.held = map[string][]*message{}
	}
	return s
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// delete marks the subscription deleted: its receivers stop with
// ErrSubscriptionNotFound.
func (s *subscription) delete() {
	close(s.deleted)
}

func (r *receiver) notFound() error {
	return fmt.Errorf("memory: receive from %q of topic %q: the subscription was deleted: %w", r.s.name, r.s.topic, driver.ErrSubscriptionNotFound)
}

// room is how many more events the subscription may take now.
func (s *subscription) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, s.p.opts.MaxBacklog-s.q.backlog())
}

// enqueue appends events, allocating their messages in one block. The
// events are the provider's frozen copies, shared by every subscription and
// never handed to a handler.
func (s *subscription) enqueue(events []eventCopy) {
	block := make([]message, len(events))
	s.mu.Lock()
	for i := range events {
		e := &events[i].ev
		m := &block[i]
		m.ev = e
		s.nextSeq++
		m.seq = s.nextSeq
		if s.q.ordered {
			m.key = crossbus.PartitionKey(e)
		}
		m.index = -1
		s.q.fresh.push(m)
	}
	s.mu.Unlock()
	signal(s.ready)
}

// settle finishes a delivery: the message leaves the in-flight heap.
func (s *subscription) settle(q *queue, d *delivery) (*message, error) {
	m := d.m
	if m.gen != d.gen || m.state != stateInflight {
		if m.state == stateDone && m.gen == d.gen {
			return nil, fmt.Errorf("memory: delivery of event %q already settled", m.ev.ID())
		}
		return nil, errStale
	}
	heap.Remove(&q.inflight, m.index)
	return m, nil
}

func (s *subscription) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Waiting: s.q.fresh.n + len(s.q.retry), Delayed: len(s.q.delayed), InFlight: len(s.q.inflight)}
	for _, h := range s.q.held {
		st.Waiting += len(h)
	}
	st.Dead = s.dead.backlog()
	return st
}

func (s *subscription) deadLetters() []driver.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*message
	for _, m := range s.dead.retry {
		all = append(all, m)
	}
	for i := 0; i < s.dead.fresh.n; i++ {
		all = append(all, s.dead.fresh.buf[(s.dead.fresh.head+i)%len(s.dead.fresh.buf)])
	}
	out := make([]driver.Event, 0, len(all))
	for _, m := range all {
		out = append(out, m.ev.Clone())
	}
	sortEventsBySeq(out, all)
	return out
}

func sortEventsBySeq(out []driver.Event, ms []*message) {
	// insertion sort: dead-letter queues are small and mostly ordered
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].seq < ms[j-1].seq; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

// receiver is one consumer of a subscription (or of its dead-letter queue).
type receiver struct {
	p     *Provider
	s     *subscription
	q     *queue
	lease time.Duration
	dead  bool

	closeOnce sync.Once
	done      chan struct{}
}

// deliveryBlock holds the deliveries of one Receive, with their events'
// copies and data, allocated together. Blocks are never reused: a handler
// may keep its event after it returned (to record it, or to hand it to
// another goroutine), and the engine may read it after settling.
type deliveryBlock struct {
	ds    []delivery
	arena []byte
}

func newBlock(n, dataBytes int) *deliveryBlock {
	return &deliveryBlock{ds: make([]delivery, n), arena: make([]byte, dataBytes)}
}

func (r *receiver) wake() chan struct{} {
	if r.dead {
		return r.s.deadReady
	}
	return r.s.ready
}

// Receive waits for deliverable events and leases up to len(buf) of them.
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	var timer crossbus.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-r.done:
			return 0, fmt.Errorf("memory: receive from %q: %w", r.s.name, driver.ErrClosed)
		case <-r.p.done:
			return 0, fmt.Errorf("memory: receive from %q: %w", r.s.name, driver.ErrClosed)
		case <-r.s.deleted:
			return 0, r.notFound()
		default:
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, due, more := r.take(buf)
		if more {
			signal(r.wake()) // let another waiting receiver take the rest
		}
		if n > 0 {
			return n, nil
		}
		var tc <-chan time.Time
		if due > 0 {
			wait := time.Duration(due - r.p.nanotime())
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
			if timer == nil {
				timer = r.p.newTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C()
		}
		select {
		case <-r.wake():
		case <-tc:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-r.done:
		case <-r.p.done:
		case <-r.s.deleted:
		}
	}
}

// take leases up to len(buf) events. It returns how many, the next time
// something becomes due, and whether more are deliverable right now.
func (r *receiver) take(buf []driver.Delivery) (n int, due int64, more bool) {
	now := r.p.nanotime()
	s := r.s
	s.mu.Lock()
	r.q.expire(now)
	var ms []*message // what this receive leases; its deliveries are allocated once it is known
	for len(ms) < len(buf) {
		m := r.q.next()
		if m == nil {
			break
		}
		if ms == nil {
			ms = make([]*message, 0, min(len(buf), 1+r.q.fresh.n+len(r.q.retry)))
		}
		m.attempts++
		m.gen++
		m.state = stateInflight
		m.due = now + int64(r.lease)
		heap.Push(&r.q.inflight, m)
		ms = append(ms, m)
	}
	n = len(ms)
	size := 0
	for _, m := range ms {
		size += len(m.ev.DataEncoded)
	}
	blk := newBlock(n, size)
	for i, m := range ms {
		d := &blk.ds[i]
		d.r, d.m, d.gen, d.attempt = r, m, m.gen, m.attempts
		buf[i] = d
	}
	more = n == len(buf) && (r.q.fresh.n > 0 || len(r.q.retry) > 0)
	due = r.q.nextDue()
	s.mu.Unlock()
	// Each delivery gets its own copy (the frozen event never changes, so
	// copying needs no lock).
	arena := blk.arena
	for i := range blk.ds {
		arena = blk.ds[i].c.copyInto(blk.ds[i].m.ev, arena)
	}
	return n, due, more
}

// Close stops this receiver; its unsettled deliveries are redelivered when
// their leases run out.
func (r *receiver) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { close(r.done) })
	return nil
}

// delivery is one lease of a message to a receiver, with its own copy of
// the event.
type delivery struct {
	r       *receiver
	m       *message
	gen     uint32
	attempt int
	c       eventCopy
}

func (d *delivery) Event() *driver.Event { return &d.c.ev }
func (d *delivery) Attempt() int         { return d.attempt }

func (d *delivery) Ack(ctx context.Context) error {
	s := d.r.s
	s.mu.Lock()
	m, err := s.settle(d.r.q, d)
	if err == nil {
		m.state = stateDone
		d.r.q.release(m)
	}
	s.mu.Unlock()
	if err == nil {
		signal(s.space)
		if d.r.q.ordered {
			signal(d.r.wake())
		}
	}
	return err
}

func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	s := d.r.s
	s.mu.Lock()
	m, err := s.settle(d.r.q, d)
	if err == nil {
		if delay > 0 {
			m.state = stateDelayed
			m.due = d.r.p.nanotime() + int64(delay)
			heap.Push(&d.r.q.delayed, m)
		} else {
			m.state = stateReady
			heap.Push(&d.r.q.retry, m)
		}
	}
	s.mu.Unlock()
	if err == nil {
		signal(d.r.wake())
	}
	return err
}

func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	if d.r.dead {
		return fmt.Errorf("memory: dead-letter a dead letter: %w", driver.ErrNotSupported)
	}
	s := d.r.s
	s.mu.Lock()
	if n := s.dead.backlog(); n >= s.p.opts.MaxDeadLetters {
		s.mu.Unlock()
		return fmt.Errorf("memory: dead-letter queue of subscription %q is full (%d of %d events); the event stays in the subscription", s.name, n, s.p.opts.MaxDeadLetters)
	}
	m, err := s.settle(d.r.q, d)
	if err == nil {
		m.state = stateDone
		d.r.q.release(m)
		dl := driver.DeadLetterEvent(m.ev, info)
		s.nextSeq++
		s.dead.fresh.push(&message{ev: &dl, seq: s.nextSeq, index: -1})
	}
	s.mu.Unlock()
	if err == nil {
		signal(s.deadReady)
		signal(s.space)
		if d.r.q.ordered {
			signal(d.r.wake())
		}
	}
	return err
}

func (d *delivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	s := d.r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	m := d.m
	if m.gen != d.gen || m.state != stateInflight {
		return errStale
	}
	m.due = d.r.p.nanotime() + int64(lease)
	heap.Fix(&d.r.q.inflight, m.index)
	return nil
}
