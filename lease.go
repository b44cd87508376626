package crossbus

import (
	"slices"
	"sync"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// leaseSet tracks the deliveries running handlers hold, so their leases can
// be extended. Each worker owns a slot and updates only its own, so holding
// costs one uncontended lock per event; the housekeeping goroutine reads
// every slot.
type leaseSet struct {
	mu    sync.Mutex
	slots []*leaseSlot
}

type leaseSlot struct {
	mu  sync.Mutex
	one driver.Delivery   // a per-event worker's delivery
	ds  []driver.Delivery // a batch worker's deliveries
}

func (l *leaseSet) newSlot() *leaseSlot {
	sl := &leaseSlot{}
	l.mu.Lock()
	l.slots = append(l.slots, sl)
	l.mu.Unlock()
	return sl
}

func (l *leaseSet) dropSlot(sl *leaseSlot) {
	l.mu.Lock()
	if i := slices.Index(l.slots, sl); i >= 0 {
		l.slots = slices.Delete(l.slots, i, i+1)
	}
	l.mu.Unlock()
}

func (sl *leaseSlot) hold(d driver.Delivery) {
	sl.mu.Lock()
	sl.one = d
	sl.mu.Unlock()
}

func (sl *leaseSlot) holdAll(ds []driver.Delivery) {
	sl.mu.Lock()
	sl.ds = ds
	sl.mu.Unlock()
}

// snapshot appends every held delivery to dst.
func (l *leaseSet) snapshot(dst []driver.Delivery) []driver.Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sl := range l.slots {
		sl.mu.Lock()
		if sl.one != nil {
			dst = append(dst, sl.one)
		}
		dst = append(dst, sl.ds...)
		sl.mu.Unlock()
	}
	return dst
}

// housekeeping runs every quarter of the ack deadline while the subscription
// works: it renews the lease of every delivery a handler holds (so a slow
// handler does not have its event redelivered to another consumer while it
// still works on it) and returns events that waited too long for a free
// handler. It ends when the workers are done or the shutdown abandons them.
func (s *Subscription) housekeeping() {
	defer close(s.houseDone)
	lease := s.cfg.ackDeadline
	if lease <= 0 {
		select {
		case <-s.workersDone:
		case <-s.abandonReq:
		}
		return
	}
	t := time.NewTicker(lease / 4)
	defer t.Stop()
	extend := s.caps.LeaseExtension
	var held []driver.Delivery
	for {
		select {
		case <-s.workersDone:
			return
		case <-s.abandonReq:
			return
		case <-t.C:
		}
		if s.pool != nil {
			s.pool.sweep(s.clock.Now())
		}
		if !extend {
			continue
		}
		held = s.heldDeliveries(held[:0])
		for _, d := range held {
			if x, ok := d.(driver.LeaseExtender); ok {
				// An error means the delivery was settled meanwhile or its
				// lease is already lost: nothing more to do for it here.
				_ = x.ExtendLease(s.settleCtx, lease)
			}
		}
		clear(held)
	}
}

func (s *Subscription) heldDeliveries(dst []driver.Delivery) []driver.Delivery {
	if s.cfg.ordered {
		return s.sched.snapshot(dst)
	}
	dst = s.leases.snapshot(dst)
	if s.batch != nil { // events held for an in-place retry in a later batch
		dst = s.batch.snapshotRetries(dst)
	}
	return dst
}
