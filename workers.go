package crossbus

import (
	"sync"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// pool runs an unordered route. Received deliveries wait in one queue that
// every worker takes from, so a slow handler never holds back events another
// worker could run. There is no receiving goroutine of its own: a worker that
// finds the queue empty receives (at most maxReceivers at a time), keeps the
// first delivery and queues the rest for the others. Workers are started as
// the queue needs them, up to the route's concurrency, so a large
// concurrency costs nothing until events arrive.
//
// A delivery waits in the queue about a third of its ack deadline at most;
// then it goes back to the provider so that another consumer can take it,
// instead of being held — and its lease run out — behind busy handlers. The
// housekeeping tick (every quarter of the ack deadline) moves the cut-off
// and sweeps the queue, so taking an event costs no clock read; an event is
// started at most 7/12 of its ack deadline after it was received, and its
// lease is renewed within a quarter more.
type pool struct {
	s            *Subscription
	maxReceivers int
	maxWait      time.Duration // 0: no limit (the provider has no lease)
	staleBefore  time.Time     // queued before this: return, do not start (under mu)

	mu        sync.Mutex
	cond      *sync.Cond
	queue     []queued // FIFO from head
	head      int
	receivers int // workers receiving now
	started   int // workers started
	idle      int // workers waiting for work
	stopped   bool
}

type queued struct {
	d  driver.Delivery
	at time.Time
}

func newPool(s *Subscription) *pool {
	c := s.cfg.concurrency
	p := &pool{s: s, maxReceivers: max(1, min(c, (c+s.cfg.prefetch-1)/s.cfg.prefetch)), maxWait: s.cfg.ackDeadline / 3}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// start starts the first worker; it receives, and starts more as needed.
func (p *pool) start() {
	p.mu.Lock()
	p.started = 1
	p.mu.Unlock()
	p.s.wg.Add(1)
	go p.worker()
}

func (p *pool) worker() {
	s := p.s
	defer s.wg.Done()
	slot := s.leases.newSlot()
	defer s.leases.dropSlot(slot)
	var buf []driver.Delivery
	for {
		d, receive := p.next()
		if receive {
			if buf == nil {
				buf = make([]driver.Delivery, s.cfg.prefetch)
			}
			n := s.receiveGated(s.recvCtx, buf)
			d = p.received(buf[:n])
			clear(buf[:n])
			if d == nil {
				continue
			}
		}
		if d == nil {
			return
		}
		slot.hold(d)
		s.process(s.handlerCtx, d)
		slot.hold(nil)
	}
}

// next returns a queued delivery, or receive=true when the worker should
// receive, or (nil, false) once the pool stopped.
func (p *pool) next() (d driver.Delivery, receive bool) {
	var stale []driver.Delivery
	p.mu.Lock()
	for {
		if p.stopped {
			break
		}
		if q, ok := p.pop(); ok {
			if q.at.Before(p.staleBefore) {
				stale = append(stale, q.d)
				continue
			}
			d = q.d
			break
		}
		if p.receivers < p.maxReceivers {
			p.receivers++
			receive = true
			break
		}
		p.idle++
		p.cond.Wait()
		p.idle--
	}
	p.mu.Unlock()
	p.s.returnAll(stale)
	return d, receive
}

func (p *pool) pop() (queued, bool) {
	if p.head == len(p.queue) {
		return queued{}, false
	}
	q := p.queue[p.head]
	p.queue[p.head] = queued{}
	p.head++
	switch {
	case p.head == len(p.queue):
		p.queue, p.head = p.queue[:0], 0
	case p.head >= 1024 && p.head*2 >= len(p.queue): // keep the backing array from growing
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return q, true
}

// received ends a worker's receive: it queues ds but the first, wakes or
// starts workers for them, and returns the first (nil when none).
func (p *pool) received(ds []driver.Delivery) driver.Delivery {
	p.mu.Lock()
	p.receivers--
	if len(ds) == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.stopped {
		p.mu.Unlock()
		p.s.returnAll(ds)
		return nil
	}
	if len(ds) > 1 {
		now := p.s.clock.Now()
		for _, d := range ds[1:] {
			p.queue = append(p.queue, queued{d: d, at: now})
		}
	}
	// This worker is about to handle an event: wake (or start) workers for
	// the queued events and one more to take over receiving, as the
	// concurrency allows.
	need := len(p.queue) - p.head + 1
	wake := min(need, p.idle)
	spawn := min(need-wake, p.s.cfg.concurrency-p.started)
	p.started += spawn
	all := wake == p.idle
	p.mu.Unlock()
	if all && wake > 0 {
		p.cond.Broadcast()
	} else {
		for range wake {
			p.cond.Signal()
		}
	}
	// The calling worker counts in s.wg, so Add cannot race with Wait.
	p.s.wg.Add(spawn)
	for range spawn {
		go p.worker()
	}
	return ds[0]
}

// stop wakes every waiting worker and returns the queued deliveries to the
// provider.
func (p *pool) stop() {
	p.mu.Lock()
	p.stopped = true
	var back []driver.Delivery
	for {
		q, ok := p.pop()
		if !ok {
			break
		}
		back = append(back, q.d)
	}
	p.mu.Unlock()
	p.cond.Broadcast()
	p.s.returnAll(back)
}

// sweep returns deliveries that waited longer than maxWait (no worker became
// free for them) to the provider.
func (p *pool) sweep(now time.Time) {
	if p.maxWait <= 0 {
		return
	}
	var stale []driver.Delivery
	p.mu.Lock()
	p.staleBefore = now.Add(-p.maxWait)
	for p.head < len(p.queue) && p.queue[p.head].at.Before(p.staleBefore) {
		q, _ := p.pop()
		stale = append(stale, q.d)
	}
	p.mu.Unlock()
	if len(stale) > 0 {
		p.s.log.Info("crossbus: events waited too long for a free handler; returned to the provider",
			"subscription", p.s.name, "topic", p.s.topic, "events", len(stale), "maxWait", p.maxWait)
	}
	p.s.returnAll(stale)
}
