// Package clocktest provides a fake crossbus.Clock for tests: time stands
// still until the test moves it with Advance, and timers due by then fire in
// order. With it, tests of rate limits, circuit breakers, batch waits, linger
// and gap timeouts run deterministically and never sleep:
//
//	clk := clocktest.New(time.Time{})
//	r.Handle("topic", "sub", h, crossbus.WithRateLimit(10, 1), crossbus.WithClock(clk))
//	...
//	clk.BlockUntil(ctx, 1) // the route's worker waits for a token
//	clk.Advance(100 * time.Millisecond)
package clocktest

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
)

// Clock is a fake crossbus.Clock. The zero value is not usable; call New.
// It is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  timerHeap
	seq     uint64        // orders timers due at the same instant
	changed chan struct{} // closed and replaced when the timer count changes
}

// Epoch is the time a Clock made by New(time.Time{}) starts at.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// New returns a fake clock reading start (Epoch when start is zero).
func New(start time.Time) *Clock {
	if start.IsZero() {
		start = Epoch
	}
	return &Clock{now: start, changed: make(chan struct{})}
}

var _ crossbus.Clock = (*Clock)(nil)

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Since returns the fake time elapsed since t.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// NewTimer returns a timer that fires when the clock has been advanced by d.
// A timer with d <= 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) crossbus.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1), index: -1}
	c.start(t, d)
	return t
}

// AfterFunc calls f, in the goroutine that advances the clock past its due
// time, once the clock has been advanced by d (at once, in a new goroutine,
// when d <= 0).
func (c *Clock) AfterFunc(d time.Duration, f func()) crossbus.Timer {
	t := &timer{c: c, fn: f, index: -1}
	c.start(t, d)
	return t
}

func (c *Clock) start(t *timer, d time.Duration) {
	c.mu.Lock()
	if d <= 0 {
		now := c.now
		c.mu.Unlock()
		t.fire(now, true)
		return
	}
	c.schedule(t, c.now.Add(d))
	c.mu.Unlock()
}

// schedule adds t to the pending timers; c.mu is held.
func (c *Clock) schedule(t *timer, when time.Time) {
	c.seq++
	t.when, t.seq = when, c.seq
	heap.Push(&c.timers, t)
	c.notify()
}

// notify wakes BlockUntil callers; c.mu is held.
func (c *Clock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock forward by d, firing every timer that falls due,
// in due order; Now reads each timer's due time while it fires. Channel
// timers deliver their time without blocking; AfterFunc functions run in
// this goroutine before Advance returns.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("clocktest: Advance with a negative duration")
	}
	c.mu.Lock()
	target := c.now.Add(d)
	for len(c.timers) > 0 && !c.timers[0].when.After(target) {
		t := heap.Pop(&c.timers).(*timer)
		c.now = t.when
		c.notify()
		c.mu.Unlock()
		t.fire(t.when, false)
		c.mu.Lock()
	}
	c.now = target
	c.mu.Unlock()
}

// Set moves the clock to t (which must not be before Now), firing due timers
// as Advance does.
func (c *Clock) Set(t time.Time) {
	d := t.Sub(c.Now())
	if d < 0 {
		panic("clocktest: Set to a time before Now")
	}
	c.Advance(d)
}

// Timers returns how many timers are pending: roughly, how many goroutines
// are waiting on the clock.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns the due time of the earliest pending timer, and false when
// none is pending.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	return c.timers[0].when, true
}

// BlockUntil waits until at least n timers are pending — that is, until the
// code under test has reached the points where it waits on the clock — or
// until ctx ends, returning ctx's error. Use it before Advance so that the
// timers the test means to fire exist.
func (c *Clock) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if len(c.timers) >= n {
			c.mu.Unlock()
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// timer is a fake timer: a channel timer (ch) or a function timer (fn).
type timer struct {
	c     *Clock
	ch    chan time.Time
	fn    func()
	when  time.Time
	seq   uint64
	index int // in the heap; -1 when not pending
}

func (t *timer) fire(now time.Time, immediate bool) {
	if t.fn != nil {
		if immediate {
			go t.fn()
		} else {
			t.fn()
		}
		return
	}
	select {
	case t.ch <- now:
	default:
	}
}

// C implements crossbus.Timer.
func (t *timer) C() <-chan time.Time { return t.ch }

// Stop implements crossbus.Timer.
func (t *timer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.timers, t.index)
	c.notify()
	return true
}

// Reset implements crossbus.Timer.
func (t *timer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	pending := t.index >= 0
	if pending {
		heap.Remove(&c.timers, t.index)
	}
	if d <= 0 {
		c.notify()
		now := c.now
		c.mu.Unlock()
		t.fire(now, true)
		return pending
	}
	c.schedule(t, c.now.Add(d))
	c.mu.Unlock()
	return pending
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when.Equal(h[j].when) {
		return h[i].seq < h[j].seq
	}
	return h[i].when.Before(h[j].when)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *timerHeap) Push(x any)   { t := x.(*timer); t.index = len(*h); *h = append(*h, t) }
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	t.index = -1
	return t
}
