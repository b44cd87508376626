// Package attempts counts deliveries of messages whose platform does not
// report a delivery attempt, so that the retry policy still sees rising
// attempt numbers. Counts are kept per process: a message redelivered to
// another consumer process starts again at 1 there.
//
// Only failures are recorded (a message handed back for redelivery), so the
// common case, a message handled at its first delivery, costs one lookup.
package attempts

import "sync"

// Counter counts failed deliveries by message key. It holds at most Max
// keys and forgets the oldest beyond that. It is safe for concurrent use.
type Counter struct {
	max int

	mu     sync.Mutex
	failed map[string]int
	order  []string // keys in first-failure order; may hold forgotten keys
}

// New returns a counter of at most max keys (max < 1 means 65,536).
func New(max int) *Counter {
	if max < 1 {
		max = 1 << 16
	}
	return &Counter{max: max, failed: map[string]int{}}
}

// Attempt returns the attempt number of a new delivery of key: 1 plus the
// failures recorded for it.
func (c *Counter) Attempt(key string) int {
	c.mu.Lock()
	n := c.failed[key]
	c.mu.Unlock()
	return n + 1
}

// Failed records that a delivery of key was handed back for redelivery.
func (c *Counter) Failed(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.failed[key]
	c.failed[key] = n + 1
	if n > 0 {
		return
	}
	c.order = append(c.order, key)
	for len(c.failed) > c.max && len(c.order) > 0 {
		k := c.order[0]
		c.order[0] = ""
		c.order = c.order[1:]
		delete(c.failed, k)
	}
}

// Forget drops key once its message is settled for good.
func (c *Counter) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.failed[key]; !ok {
		return
	}
	delete(c.failed, key)
	if len(c.order) > 2*c.max+64 { // mostly forgotten keys: compact
		live := c.order[:0]
		for _, k := range c.order {
			if _, ok := c.failed[k]; ok {
				live = append(live, k)
			}
		}
		clear(c.order[len(live):])
		c.order = live
	}
}

// Len reports how many keys have failures recorded.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.failed)
}
