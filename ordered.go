package crossbus

import (
	"sync"

	"github.com/crossbus/crossbus/driver"
)

// keyScheduler runs an ordered subscription: deliveries are queued per
// partition key; a worker takes a key, handles its oldest event, and puts the
// key back at the end of the ready list if more wait. So each key has at most
// one event in flight and keeps publish order, while different keys run in
// parallel. Events without a key have no order to keep and run as they come.
type keyScheduler struct {
	mu      sync.Mutex
	cond    *sync.Cond
	keys    map[string]*keyQueue
	ready   []*keyQueue // keys with work and no worker
	queued  int         // deliveries waiting in queues
	limit   int         // the dispatcher waits while queued >= limit
	room    *sync.Cond
	stopped bool
	active  map[*keyQueue]struct{} // keys a worker is on, for lease snapshots
	idle    int                    // workers waiting in next
	drained bool
}

type keyQueue struct {
	key   string
	items []driver.Delivery
}

func newKeyScheduler(limit int) *keyScheduler {
	k := &keyScheduler{keys: map[string]*keyQueue{}, limit: limit, active: map[*keyQueue]struct{}{}}
	k.cond = sync.NewCond(&k.mu)
	k.room = sync.NewCond(&k.mu)
	return k
}

// add queues deliveries by key and returns how many more workers the ready
// keys could use.
func (k *keyScheduler) add(ds []driver.Delivery) int {
	k.mu.Lock()
	for _, d := range ds {
		key := PartitionKey(d.Event())
		if key == "" {
			k.ready = append(k.ready, &keyQueue{items: []driver.Delivery{d}})
			k.queued++
			continue
		}
		q := k.keys[key]
		if q == nil {
			q = &keyQueue{key: key}
			k.keys[key] = q
			k.ready = append(k.ready, q)
		}
		q.items = append(q.items, d)
		k.queued++
	}
	want := len(k.ready) - k.idle
	k.mu.Unlock()
	k.cond.Broadcast()
	return max(want, 0)
}

// waitRoom blocks the dispatcher while the queues are full.
func (k *keyScheduler) waitRoom() {
	k.mu.Lock()
	for k.queued >= k.limit && !k.stopped {
		k.room.Wait()
	}
	k.mu.Unlock()
}

// next gives a worker the head of a ready key, or nil once stopped.
func (k *keyScheduler) next() (*keyQueue, driver.Delivery) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for len(k.ready) == 0 && !k.stopped {
		k.idle++
		k.cond.Wait()
		k.idle--
	}
	if k.stopped {
		return nil, nil
	}
	q := k.ready[0]
	k.ready[0] = nil
	k.ready = k.ready[1:]
	k.active[q] = struct{}{}
	return q, q.items[0]
}

// done marks the head of q handled and requeues the key if more wait.
func (k *keyScheduler) done(q *keyQueue) {
	k.mu.Lock()
	q.items[0] = nil
	q.items = q.items[1:]
	k.queued--
	delete(k.active, q)
	if len(q.items) > 0 {
		k.ready = append(k.ready, q)
		k.cond.Signal()
	} else if q.key != "" {
		delete(k.keys, q.key)
	}
	k.mu.Unlock()
	k.room.Signal()
}

// stop wakes everyone.
func (k *keyScheduler) stop() {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	k.cond.Broadcast()
	k.room.Broadcast()
}

// putBack returns an untouched key to the ready list, for drain to return;
// it reports true when drain ran already (the caller returns the head).
func (k *keyScheduler) putBack(q *keyQueue) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.active, q)
	if k.drained {
		return true
	}
	k.ready = append(k.ready, q)
	return false
}

// drain returns what was never started, in key order; the heads of active
// keys stay with their workers.
func (k *keyScheduler) drain() []driver.Delivery {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.drained = true
	var out []driver.Delivery
	for _, q := range k.ready {
		out = append(out, q.items...)
	}
	for q := range k.active {
		if len(q.items) > 1 {
			out = append(out, q.items[1:]...)
		}
	}
	k.ready, k.keys, k.queued = nil, map[string]*keyQueue{}, 0
	return out
}

func (k *keyScheduler) snapshot(dst []driver.Delivery) []driver.Delivery {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, q := range k.keys {
		dst = append(dst, q.items...)
	}
	for _, q := range k.ready {
		if q.key == "" {
			dst = append(dst, q.items...)
		}
	}
	return dst
}

// maxOrderedReceive bounds one receive of an ordered route, whatever its
// concurrency.
const maxOrderedReceive = 1024

// startOrdered runs one dispatcher that receives and queues by key, and up
// to cfg.concurrency workers that handle keys, started as keys become ready.
func (s *Subscription) startOrdered() {
	s.sched = newKeyScheduler(min(s.cfg.concurrency*s.cfg.prefetch, maxOrderedReceive) * 4)
	var workers sync.WaitGroup
	worker := func() {
		defer workers.Done()
		for {
			q, d := s.sched.next()
			if d == nil {
				return
			}
			if s.stopping() {
				s.sched.stop()
				if s.sched.putBack(q) { // drained already: return it here
					s.nack(d, 0)
				}
				return
			}
			s.process(s.handlerCtx, d)
			s.sched.done(q)
		}
	}
	started := 0
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]driver.Delivery, min(s.cfg.concurrency*s.cfg.prefetch, maxOrderedReceive))
		for {
			s.sched.waitRoom()
			n := s.receiveGated(s.recvCtx, buf)
			if n == 0 {
				break
			}
			spawn := min(s.sched.add(buf[:n]), s.cfg.concurrency-started)
			started += spawn
			workers.Add(spawn)
			for range spawn {
				go worker()
			}
			clear(buf[:n])
		}
		// Unstarted events go back at once; running handlers drain.
		s.sched.stop()
		s.returnAll(s.sched.drain())
		workers.Wait()
	}()
}
