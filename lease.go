package crossbus

import (
	"sync"
	"time"
)

// leaseSet tracks the deliveries each worker holds, so their leases can be
// extended while handlers run. Workers update it once per batch, not per event.
type leaseSet struct {
	mu    sync.Mutex
	slots [][]Delivery
}

func (l *leaseSet) init(n int) { l.slots = make([][]Delivery, n) }

func (l *leaseSet) hold(slot int, ds []Delivery) {
	l.mu.Lock()
	l.slots[slot] = ds
	l.mu.Unlock()
}

// snapshot appends every held delivery to dst.
func (l *leaseSet) snapshot(dst []Delivery) []Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ds := range l.slots {
		dst = append(dst, ds...)
	}
	return dst
}

// extendLeases renews the lease of every held delivery every third of the ack
// deadline, so a slow handler does not have its event redelivered to another
// consumer while it still works on it.
func (s *Subscription) extendLeases() {
	defer s.extWG.Done()
	lease := s.cfg.ackDeadline
	t := time.NewTicker(lease / 3)
	defer t.Stop()
	var held []Delivery
	for {
		select {
		case <-s.workersDone:
			return
		case <-t.C:
		}
		held = s.heldDeliveries(held[:0])
		for _, d := range held {
			if x, ok := d.(LeaseExtender); ok {
				// An error means the delivery was settled meanwhile or its
				// lease is already lost: nothing more to do for it here.
				_ = x.ExtendLease(s.settleCtx, lease)
			}
		}
		clear(held)
	}
}

func (s *Subscription) heldDeliveries(dst []Delivery) []Delivery {
	if s.cfg.ordered {
		return s.sched.snapshot(dst)
	}
	dst = s.leases.snapshot(dst)
	if s.batch != nil { // events held for an in-place retry in a later batch
		dst = s.batch.snapshotRetries(dst)
	}
	return dst
}
