package peers

import (
	"fmt"
	"sync/atomic"
	"time"
)

// tracker counts handled events and lets the publisher wait until the
// handlers have caught up. Handlers pay one atomic add and one atomic load
// per event; the publisher blocks (instead of spinning) when it is a whole
// window ahead, and is woken by the handler that reaches its target.
type tracker struct {
	handled atomic.Int64
	target  atomic.Int64 // count the publisher waits for; 0 = nobody waits
	wake    chan struct{}
}

func newTracker() *tracker {
	return &tracker{wake: make(chan struct{}, 1)}
}

// handle is called by every handler once per event.
func (t *tracker) handle() {
	h := t.handled.Add(1)
	if w := t.target.Load(); w != 0 && h >= w && t.target.CompareAndSwap(w, 0) {
		t.wake <- struct{}{}
	}
}

// waitFor blocks until at least h events were handled, or timeout passes.
func (t *tracker) waitFor(h int64, timeout time.Duration) error {
	if t.handled.Load() >= h {
		return nil
	}
	t.target.Store(h)
	if t.handled.Load() >= h && t.target.CompareAndSwap(h, 0) {
		return nil
	}
	// Either a handler will take the target and send, or it already did.
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.wake:
		return nil
	case <-timer.C:
		if t.target.CompareAndSwap(h, 0) {
			return fmt.Errorf("handled %d of %d events after waiting %v", t.handled.Load(), h, timeout)
		}
		<-t.wake // a handler took the target at the last moment
		return nil
	}
}

// stallTimeout bounds every wait of the publisher for its handlers: a
// scenario that loses events fails instead of hanging.
const stallTimeout = 2 * time.Minute

// drive publishes n events, k at a time (k = batch), keeping at most window
// events unhandled, then waits until all n were handled. publish(i, k)
// builds and publishes events i..i+k-1.
func drive(t *tracker, n, batch, window int, publish func(i, k int) error) error {
	base := t.handled.Load()
	if window < batch {
		window = batch
	}
	for i := 0; i < n; i += batch {
		if ahead := int64(i) - (t.handled.Load() - base); ahead >= int64(window) {
			if err := t.waitFor(base+int64(i-window/2), stallTimeout); err != nil {
				return err
			}
		}
		if err := publish(i, min(batch, n-i)); err != nil {
			return err
		}
	}
	return t.waitFor(base+int64(n), stallTimeout)
}
