package crossbus

import (
	"context"
	"sync"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// A batch route runs one collector and cfg.concurrency batch workers. The
// collector waits for the breaker to be closed or half-open, receives (as
// the rate limiter allows) until the batch holds maxCount events or maxWait
// has passed since its first event, and hands the batch to a free worker,
// waiting while every worker is busy, so at most concurrency+1 batches are
// held. Every held delivery — forming, handed over, running, or waiting for
// an in-place retry — is in the lease set, so its lease is extended.

// batch is a set of deliveries handled by one HandleBatch call.
type batch struct {
	ds       []driver.Delivery
	attempts []int
}

func (b *batch) add(d driver.Delivery, attempt int) {
	b.ds = append(b.ds, d)
	b.attempts = append(b.attempts, attempt)
}

func (b *batch) len() int { return len(b.ds) }

// heldRetry is a failed delivery kept for a later batch, for providers that
// cannot delay a redelivery.
type heldRetry struct {
	d       driver.Delivery
	attempt int
	due     time.Time
}

// batchState is a batch route's shared state.
type batchState struct {
	handoff chan batch
	spawn   func() bool // starts a batch worker unless all are started (collector only)

	mu      sync.Mutex
	retries []heldRetry
	wake    context.CancelFunc // interrupts the collector's wait for a first event
}

func (b *batchState) setWake(f context.CancelFunc) {
	b.mu.Lock()
	b.wake = f
	b.mu.Unlock()
}

func (b *batchState) addRetry(r heldRetry) {
	b.mu.Lock()
	b.retries = append(b.retries, r)
	wake := b.wake
	b.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// takeDue moves retries due by now into dst (up to max events in dst) and
// returns the earliest due time of those left (zero when none).
func (b *batchState) takeDue(now time.Time, dst *batch, max int) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next time.Time
	kept := b.retries[:0]
	for _, r := range b.retries {
		if !r.due.After(now) && dst.len() < max {
			dst.add(r.d, r.attempt)
			continue
		}
		if next.IsZero() || r.due.Before(next) {
			next = r.due
		}
		kept = append(kept, r)
	}
	clear(b.retries[len(kept):])
	b.retries = kept
	return next
}

func (b *batchState) snapshotRetries(dst []driver.Delivery) []driver.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.retries {
		dst = append(dst, r.d)
	}
	return dst
}

func (b *batchState) drainRetries() []driver.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]driver.Delivery, 0, len(b.retries))
	for _, r := range b.retries {
		out = append(out, r.d)
	}
	b.retries = nil
	return out
}

// startBatch starts the collector; it starts batch workers as batches need
// them, up to the route's concurrency.
func (s *Subscription) startBatch() {
	s.batch = &batchState{handoff: make(chan batch)}
	forming := s.leases.newSlot()
	var workers sync.WaitGroup
	started := 0
	worker := func() {
		defer workers.Done()
		slot := s.leases.newSlot()
		defer s.leases.dropSlot(slot)
		for b := range s.batch.handoff {
			slot.holdAll(b.ds)
			s.runBatch(s.handlerCtx, b)
			slot.holdAll(nil)
		}
	}
	s.batch.spawn = func() bool {
		if started == s.cfg.concurrency {
			return false
		}
		started++
		workers.Add(1)
		go worker()
		return true
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.collectBatches(forming)
		close(s.batch.handoff)
		s.returnAll(s.batch.drainRetries())
		workers.Wait()
		s.returnAll(s.batch.drainRetries()) // retries added while draining
	}()
}

// collectBatches forms batches until the subscription stops.
func (s *Subscription) collectBatches(forming *leaseSlot) {
	maxN, maxWait := s.cfg.batch.maxCount, s.cfg.batch.maxWait
	scratch := make([]driver.Delivery, maxN)
	for {
		if s.breaker != nil && s.breaker.waitNotOpen(s.recvCtx) != nil {
			return
		}
		b := batch{ds: make([]driver.Delivery, 0, maxN), attempts: make([]int, 0, maxN)}
		if !s.firstOfBatch(&b, scratch, forming) {
			s.returnAll(b.ds)
			return
		}
		// Fill until full or maxWait after the first event.
		if maxWait > 0 && b.len() < maxN {
			ctx, cancel := withClockDeadline(s.recvCtx, s.clock, maxWait)
			for b.len() < maxN {
				n := s.receiveGatedBatch(ctx, scratch[:maxN-b.len()])
				if n == 0 {
					break
				}
				s.addReceived(&b, scratch[:n], forming)
			}
			cancel()
		}
		forming.holdAll(b.ds)
		if !s.handOff(b) {
			forming.holdAll(nil)
			s.returnAll(b.ds)
			return
		}
		forming.holdAll(nil)
		if s.stopping() {
			return
		}
	}
}

// firstOfBatch waits for the first events of a batch: retries that fall
// due, or events from the provider. It reports false when stopping.
func (s *Subscription) firstOfBatch(b *batch, scratch []driver.Delivery, forming *leaseSlot) bool {
	maxN := len(scratch)
	for b.len() == 0 { // (events the filter skips do not count)
		if !s.holdsRetries() { // the common case: no retries to wait for
			n := s.receiveGatedBatch(s.recvCtx, scratch)
			s.addReceived(b, scratch[:n], forming)
			if n == 0 && s.stopping() {
				return false
			}
			continue
		}
		// Register the wake-up before looking at the retries, so a retry
		// added from now on interrupts the wait below.
		ctx, cancel := context.WithCancel(s.recvCtx)
		s.batch.setWake(cancel)
		now := s.clock.Now()
		next := s.batch.takeDue(now, b, maxN)
		if b.len() > 0 {
			s.batch.setWake(nil)
			cancel()
			break
		}
		var t Timer
		if !next.IsZero() {
			t = s.clock.AfterFunc(next.Sub(now), cancel)
		}
		n := s.receiveGatedBatch(ctx, scratch)
		s.batch.setWake(nil)
		if t != nil {
			t.Stop()
		}
		cancel()
		s.addReceived(b, scratch[:n], forming)
		if n == 0 && s.stopping() {
			return false
		}
	}
	forming.holdAll(b.ds)
	return true
}

// holdsRetries reports whether failed events may be held for a later batch:
// when the provider cannot delay a redelivery (long enough).
func (s *Subscription) holdsRetries() bool {
	return !s.caps.DelayedRedelivery || s.caps.MaxRedeliveryDelay > 0
}

// receiveGatedBatch is receiveGated without the breaker's per-receive budget:
// a batch route's breaker admits whole batches (see collectBatches).
func (s *Subscription) receiveGatedBatch(ctx context.Context, buf []driver.Delivery) int {
	if s.limiter == nil {
		return s.receiveCtx(ctx, buf)
	}
	r, err := s.limiter.reserve(ctx, len(buf))
	if err != nil {
		return 0
	}
	got := s.receiveCtx(ctx, buf[:r.Tokens()])
	r.Finish(got)
	return got
}

// addReceived adds received deliveries to b, acking those the filter skips
// and dead-lettering those that carry no event.
func (s *Subscription) addReceived(b *batch, ds []driver.Delivery, forming *leaseSlot) {
	var ok bool
	for i, d := range ds {
		ds[i] = nil
		if s.undecodable(s.handlerCtx, d) {
			continue
		}
		if d, ok = s.batchItem(s.handlerCtx, d, max(d.Attempt(), 1)); !ok {
			continue
		}
		if !s.accepts(d.Event()) {
			s.ack(d)
			continue
		}
		b.add(d, max(d.Attempt(), 1))
	}
	forming.holdAll(b.ds)
}

// handOff gives a formed batch to a free worker, starting one if none is
// free and the route's concurrency allows; it reports false when the
// subscription stopped first.
func (s *Subscription) handOff(b batch) bool {
	select {
	case s.batch.handoff <- b:
		return true
	default:
	}
	s.batch.spawn()
	select {
	case s.batch.handoff <- b:
		return true
	case <-s.recvCtx.Done():
		return false
	}
}
