package aws

import (
	"context"
	"sync"
)

// batchItem is one receipt handle waiting for a DeleteMessageBatch or
// ChangeMessageVisibilityBatch.
type batchItem struct {
	handle string
	secs   int32 // the visibility timeout, for visibility changes
	msgID  string
	async  bool          // nobody waits: a failure is logged
	done   chan struct{} // closed once sent (nil for async items)
	err    error
}

// batcher groups requests into batch calls the way a database groups
// commits: an item is sent at once when no call is in flight; while one is,
// items wait and go together in the next call, and full batches of 10 may
// run alongside (up to maxInflight). So a lone ack costs one round trip,
// and under load every call carries 10 entries.
type batcher struct {
	send        func(ctx context.Context, items []*batchItem)
	maxInflight int

	mu       sync.Mutex
	pending  []*batchItem
	inflight int
	idle     chan struct{} // closed when nothing is pending or in flight
}

func newBatcher(maxInflight int, send func(ctx context.Context, items []*batchItem)) *batcher {
	return &batcher{send: send, maxInflight: maxInflight}
}

// add queues it; it.done, if any, is closed once its call returned.
func (b *batcher) add(it *batchItem) {
	b.mu.Lock()
	b.pending = append(b.pending, it)
	b.start()
	b.mu.Unlock()
}

// start launches calls the rule allows. Called with mu held.
func (b *batcher) start() {
	for b.startable(0) {
		b.inflight++
		go b.run(b.take())
	}
}

// startable reports whether another call may start, given that mine of the
// calls in flight are the caller's own. Called with mu held.
func (b *batcher) startable(mine int) bool {
	others := b.inflight - mine
	return len(b.pending) > 0 && others < b.maxInflight && (others == 0 || len(b.pending) >= maxBatch)
}

func (b *batcher) take() []*batchItem {
	n := min(len(b.pending), maxBatch)
	batch := make([]*batchItem, n)
	copy(batch, b.pending)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	return batch
}

// run sends batch, then keeps sending what the rule lets it take, so that
// under load one goroutine (with its stack already grown by the SDK's
// call chain) carries call after call.
func (b *batcher) run(batch []*batchItem) {
	for {
		// Items of many callers share the call: no caller's context may
		// cancel it, so it gets its own deadline.
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		b.send(ctx, batch)
		cancel()
		for _, it := range batch {
			if it.done != nil {
				close(it.done)
			}
		}
		b.mu.Lock()
		if b.startable(1) {
			batch = b.take()
			b.mu.Unlock()
			continue
		}
		b.inflight--
		b.start()
		if b.inflight == 0 && b.idle != nil {
			close(b.idle)
			b.idle = nil
		}
		b.mu.Unlock()
		return
	}
}

// wait blocks until every queued item was sent or ctx ends.
func (b *batcher) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		if b.inflight == 0 && len(b.pending) == 0 {
			b.mu.Unlock()
			return nil
		}
		if b.idle == nil {
			b.idle = make(chan struct{})
		}
		idle := b.idle
		b.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
