package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Subscribe opens the inner receiver and injects delivery faults into it.
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	r, err := p.inner.Subscribe(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &receiver{p: p, inner: r, name: spec.Name, conn: &conn{}}, nil
}

// conn is one connection of a receiver: deliveries handed out on it are lost
// when it drops.
type conn struct {
	mu      sync.Mutex
	dropped bool
}

func (c *conn) lost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

type receiver struct {
	p     *Provider
	inner driver.Receiver
	name  string

	mu      sync.Mutex
	conn    *conn
	held    []heldDelivery    // delayed deliveries, in arrival order
	pending []driver.Delivery // ready deliveries that did not fit a buffer
}

type heldDelivery struct {
	d   driver.Delivery
	key string
	at  time.Time // when it may be handed out
}

// Capabilities are the inner receiver's, when it has its own.
func (r *receiver) Capabilities() driver.Capabilities {
	if rc, ok := r.inner.(driver.ReceiverCapabilities); ok {
		return rc.Capabilities()
	}
	return r.p.inner.Capabilities()
}

func (r *receiver) Close(ctx context.Context) error {
	// Held and pending deliveries were never handed out: the inner
	// provider redelivers them once their leases run out.
	r.mu.Lock()
	r.held, r.pending = nil, nil
	r.mu.Unlock()
	return r.inner.Close(ctx)
}

func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	p := r.p
	if p.hit(p.opts.Disconnect) {
		p.counts.disconnects.Add(1)
		r.mu.Lock()
		old := r.conn
		r.conn = &conn{}
		r.held, r.pending = nil, nil // lost with the connection, like everything in its buffers
		r.mu.Unlock()
		old.mu.Lock()
		old.dropped = true
		old.mu.Unlock()
		return 0, fmt.Errorf("%w: connection to the broker dropped (receiving from %q)", ErrInjected, r.name)
	}
	if p.hit(p.opts.ReceiveError) {
		p.counts.receiveErrors.Add(1)
		return 0, fmt.Errorf("%w: receive from %q failed", ErrInjected, r.name)
	}
	for {
		if n := r.ready(buf); n > 0 {
			return n, nil
		}
		// Receive from the inner provider, but not past the moment the
		// next held delivery is due.
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if due, ok := r.nextDue(); ok {
			rctx, cancel = context.WithDeadline(ctx, due)
		}
		in := make([]driver.Delivery, len(buf))
		n, err := r.inner.Receive(rctx, in)
		cancel()
		if n > 0 {
			r.arrive(in[:n])
			continue
		}
		if err != nil {
			if ctx.Err() == nil && rctx.Err() != nil && errors.Is(err, rctx.Err()) {
				continue // a held delivery came due
			}
			return 0, err
		}
	}
}

// nextDue is when the earliest held delivery may be handed out.
func (r *receiver) nextDue() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) == 0 {
		return time.Time{}, false
	}
	due := r.held[0].at
	for _, h := range r.held[1:] {
		if h.at.Before(due) {
			due = h.at
		}
	}
	return due, true
}

// arrive takes deliveries from the inner receiver: some are held back,
// some duplicated, some shuffled; the rest wait in pending.
func (r *receiver) arrive(ds []driver.Delivery) {
	p := r.p
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.conn
	now := time.Now()
	var ready []driver.Delivery
	for _, d := range ds {
		w := &delivery{Delivery: d, p: p, conn: c}
		key := crossbus.PartitionKey(d.Event())
		// Behind a held delivery of its key, a delivery waits too, unless
		// order within a key may break.
		if !p.opts.ReorderWithinKey && key != "" {
			if at, ok := r.heldKey(key); ok {
				r.held = append(r.held, heldDelivery{d: w, key: key, at: at})
				continue
			}
		}
		if p.hit(p.opts.Delay) {
			p.counts.delays.Add(1)
			wait := time.Duration(p.intN(int(p.opts.MaxDelay)) + 1)
			r.held = append(r.held, heldDelivery{d: w, key: key, at: now.Add(wait)})
			continue
		}
		ready = append(ready, w)
		if p.hit(p.opts.Duplicate) {
			p.counts.duplicates.Add(1)
			ready = append(ready, &duplicate{delivery: w, ev: d.Event().Clone()})
		}
	}
	if len(ready) > 1 && p.hit(p.opts.Reorder) {
		p.counts.reorders.Add(1)
		ready = r.shuffle(ready)
	}
	r.pending = append(r.pending, ready...)
}

// heldKey returns the release time of the last held delivery of key.
func (r *receiver) heldKey(key string) (time.Time, bool) {
	for i := len(r.held) - 1; i >= 0; i-- {
		if r.held[i].key == key {
			return r.held[i].at, true
		}
	}
	return time.Time{}, false
}

// ready moves due held deliveries to pending (a key's in their order) and
// fills buf from pending.
func (r *receiver) ready(buf []driver.Delivery) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) > 0 {
		now := time.Now()
		blocked := map[string]bool{}
		kept := r.held[:0]
		for _, h := range r.held {
			orderMatters := !r.p.opts.ReorderWithinKey && h.key != ""
			if !h.at.After(now) && !(orderMatters && blocked[h.key]) {
				r.pending = append(r.pending, h.d)
				continue
			}
			if orderMatters {
				blocked[h.key] = true
			}
			kept = append(kept, h)
		}
		clear(r.held[len(kept):])
		r.held = kept
	}
	n := copy(buf, r.pending)
	clear(r.pending[:n])
	r.pending = r.pending[n:]
	if len(r.pending) == 0 {
		r.pending = nil
	}
	return n
}

// shuffle reorders deliveries at random; unless ReorderWithinKey, each
// key's deliveries keep their relative order (a delivery without a key
// goes anywhere).
func (r *receiver) shuffle(ds []driver.Delivery) []driver.Delivery {
	p := r.p
	out := make([]driver.Delivery, len(ds))
	perm := make([]int, len(ds))
	for i := range perm {
		perm[i] = i
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := p.intN(i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	for i, j := range perm {
		out[i] = ds[j]
	}
	if p.opts.ReorderWithinKey {
		return out
	}
	// Put each key's deliveries back in their order, in the slots the
	// shuffle gave that key.
	slots := map[string][]int{}
	orig := map[string][]driver.Delivery{}
	for i, d := range out {
		if k := crossbus.PartitionKey(d.Event()); k != "" {
			slots[k] = append(slots[k], i)
		}
	}
	for _, d := range ds {
		if k := crossbus.PartitionKey(d.Event()); k != "" {
			orig[k] = append(orig[k], d)
		}
	}
	for k, is := range slots {
		for n, i := range is {
			out[i] = orig[k][n]
		}
	}
	return out
}

// delivery is an inner delivery handed out on a connection.
type delivery struct {
	driver.Delivery
	p    *Provider
	conn *conn
}

// settle runs a settlement with the faults that apply to it.
func (d *delivery) settle(ctx context.Context, f func(context.Context) error) error {
	p := d.p
	if p.hit(p.opts.SlowSettle) {
		p.counts.slowSettles.Add(1)
		t := time.NewTimer(p.opts.SettleDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if d.conn.lost() {
		p.counts.lostSettlements.Add(1)
		return fmt.Errorf("%w: the connection this delivery came on was dropped; the broker redelivers it", ErrInjected)
	}
	return f(ctx)
}

func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, func(ctx context.Context) error {
		if d.p.hit(d.p.opts.LostAck) {
			d.p.counts.lostAcks.Add(1)
			return nil // lost on the way: the broker never hears of it
		}
		return d.Delivery.Ack(ctx)
	})
}

func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	return d.settle(ctx, func(ctx context.Context) error { return d.Delivery.Nack(ctx, delay) })
}

func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	return d.settle(ctx, func(ctx context.Context) error { return d.Delivery.DeadLetter(ctx, info) })
}

func (d *delivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	x, ok := d.Delivery.(driver.LeaseExtender)
	if !ok {
		return driver.ErrNotSupported
	}
	if d.conn.lost() {
		return fmt.Errorf("%w: connection dropped", ErrInjected)
	}
	return x.ExtendLease(ctx, lease)
}

// DecodeError passes on the inner delivery's (driver.Undecodable).
func (d *delivery) DecodeError() error {
	if u, ok := d.Delivery.(driver.Undecodable); ok {
		return u.DecodeError()
	}
	return nil
}

// duplicate is the second copy of a delivery: the same event (its own
// copy), whose settlement the broker ignores — the original's counts.
type duplicate struct {
	*delivery
	ev driver.Event
}

func (d *duplicate) Event() *driver.Event { return &d.ev }

func (d *duplicate) Ack(ctx context.Context) error { return nil }

func (d *duplicate) Nack(ctx context.Context, delay time.Duration) error { return nil }

func (d *duplicate) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error { return nil }

func (d *duplicate) ExtendLease(ctx context.Context, lease time.Duration) error { return nil }
