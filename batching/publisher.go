package batching

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/sysclock"
)

// Options configure a Publisher. Zero values take the
// documented defaults.
type Options struct {
	// MaxCount sends a topic's pending events once this many are waiting
	// (default 100).
	MaxCount int
	// MaxBytes sends a topic's pending events once their encoded size
	// (EncodedSize) reaches it (0: no byte bound; the bus still splits
	// what it sends to the provider's limits).
	MaxBytes int
	// Linger is the longest an event waits for others to join its batch
	// (default 10ms).
	Linger time.Duration
	// FlushTimeout bounds one send to the underlying crossbus.Publisher (default
	// 30s).
	FlushTimeout time.Duration
	// Clock times Linger (default: the system clock).
	Clock crossbus.Clock
}

func (o *Options) fill() error {
	switch {
	case o.MaxCount < 0:
		return fmt.Errorf("%w: Options.MaxCount must not be negative, got %d", crossbus.ErrInvalidOption, o.MaxCount)
	case o.MaxBytes < 0:
		return fmt.Errorf("%w: Options.MaxBytes must not be negative, got %d", crossbus.ErrInvalidOption, o.MaxBytes)
	case o.Linger < 0:
		return fmt.Errorf("%w: Options.Linger must not be negative, got %v", crossbus.ErrInvalidOption, o.Linger)
	case o.FlushTimeout < 0:
		return fmt.Errorf("%w: Options.FlushTimeout must not be negative, got %v", crossbus.ErrInvalidOption, o.FlushTimeout)
	}
	if o.MaxCount == 0 {
		o.MaxCount = 100
	}
	if o.Linger == 0 {
		o.Linger = 10 * time.Millisecond
	}
	if o.FlushTimeout == 0 {
		o.FlushTimeout = 30 * time.Second
	}
	o.Clock = sysclock.Or(o.Clock)
	return nil
}

// Publisher groups the publishes of many concurrent callers into fewer,
// larger sends, for high-frequency producers: per topic, events wait until
// MaxCount events or MaxBytes are pending or Linger has passed since the
// first of them, then go out in one Publish call to the underlying
// crossbus.Publisher (usually a *Bus, which validates them and splits them to the
// provider's limits).
//
// Each Publish call blocks until its events were sent and returns exactly
// its own events' results: nil, a *crossbus.PublishError whose indexes refer to the
// caller's events, or the send's error. A caller's events are never split
// between sends and keep their order. If the caller's context ends while its
// events still wait, they are withdrawn and Publish returns the context's
// error; once they are being sent, Publish waits for the result (bounded by
// FlushTimeout). Close sends what is pending; Publish after Close fails with
// crossbus.ErrClosed.
//
// A send runs with the values (not the cancellation) of the context of the
// first caller in its batch, so its producer span is that caller's child.
type Publisher struct {
	p crossbus.Publisher
	o Options

	mu      sync.Mutex
	pending map[string]*pendingBatch
	sending map[*pendingBatch]struct{}
	closed  bool
}

type pendingBatch struct {
	topic  string
	ctx    context.Context // the first caller's, without cancellation
	reqs   []*publishRequest
	count  int
	bytes  int
	linger crossbus.Timer
	sent   chan struct{} // closed once every caller has its result
}

type publishRequest struct {
	events []*crossbus.Event
	size   int
	batch  *pendingBatch // nil once sent
	done   chan struct{}
	err    error
}

var _ crossbus.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher over p.
func NewPublisher(p crossbus.Publisher, opts Options) (*Publisher, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: NewPublisher needs a crossbus.Publisher", crossbus.ErrInvalidOption)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	return &Publisher{p: p, o: opts, pending: map[string]*pendingBatch{}, sending: map[*pendingBatch]struct{}{}}, nil
}

// Publish adds events to topic's pending batch and waits for the batch to be
// sent; see Publisher for the results.
func (bp *Publisher) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	if topic == "" {
		return fmt.Errorf("%w: publish needs a topic name", crossbus.ErrInvalidOption)
	}
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("batching: publish to %q: %w", topic, err)
	}
	req := &publishRequest{events: events, done: make(chan struct{})}
	if bp.o.MaxBytes > 0 {
		for _, e := range events {
			if e != nil && e.Context != nil {
				req.size += driver.EncodedSize(e)
			}
		}
	}
	bp.mu.Lock()
	if bp.closed {
		bp.mu.Unlock()
		return fmt.Errorf("batching: batch publisher: publish to %q: %w", topic, crossbus.ErrClosed)
	}
	pb := bp.pending[topic]
	if pb != nil && (pb.count+len(events) > bp.o.MaxCount || bp.o.MaxBytes > 0 && pb.bytes+req.size > bp.o.MaxBytes) {
		bp.detach(pb) // would overflow: send what waits, start afresh
		pb = nil
	}
	if pb == nil {
		pb = &pendingBatch{topic: topic, ctx: context.WithoutCancel(ctx), sent: make(chan struct{})}
		bp.pending[topic] = pb
		pb.linger = bp.o.Clock.AfterFunc(bp.o.Linger, func() { bp.lingered(pb) })
	}
	req.batch = pb
	pb.reqs = append(pb.reqs, req)
	pb.count += len(events)
	pb.bytes += req.size
	if pb.count >= bp.o.MaxCount || bp.o.MaxBytes > 0 && pb.bytes >= bp.o.MaxBytes {
		bp.detach(pb)
	}
	bp.mu.Unlock()

	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
	}
	bp.mu.Lock()
	if pb := req.batch; pb != nil { // still waiting: withdraw
		bp.withdraw(pb, req)
		bp.mu.Unlock()
		return fmt.Errorf("batching: batch publisher: publish to %q: %w", topic, ctx.Err())
	}
	bp.mu.Unlock()
	<-req.done // being sent: its result is coming
	return req.err
}

// lingered sends pb once its linger time has passed.
func (bp *Publisher) lingered(pb *pendingBatch) {
	bp.mu.Lock()
	if bp.pending[pb.topic] == pb {
		bp.detach(pb)
	}
	bp.mu.Unlock()
}

// detach takes pb out of the pending set and sends it; bp.mu is held.
func (bp *Publisher) detach(pb *pendingBatch) {
	delete(bp.pending, pb.topic)
	pb.linger.Stop()
	for _, r := range pb.reqs {
		r.batch = nil
	}
	bp.sending[pb] = struct{}{}
	go bp.send(pb)
}

// withdraw removes req from pb; bp.mu is held.
func (bp *Publisher) withdraw(pb *pendingBatch, req *publishRequest) {
	for i, r := range pb.reqs {
		if r == req {
			pb.reqs = append(pb.reqs[:i], pb.reqs[i+1:]...)
			break
		}
	}
	req.batch = nil
	pb.count -= len(req.events)
	pb.bytes -= req.size
	if len(pb.reqs) == 0 {
		pb.linger.Stop()
		delete(bp.pending, pb.topic)
	}
}

// send publishes pb and gives each caller its own events' results.
func (bp *Publisher) send(pb *pendingBatch) {
	defer func() {
		bp.mu.Lock()
		delete(bp.sending, pb)
		bp.mu.Unlock()
		close(pb.sent)
	}()
	events := make([]*crossbus.Event, 0, pb.count)
	for _, r := range pb.reqs {
		events = append(events, r.events...)
	}
	ctx, cancel := context.WithTimeout(pb.ctx, bp.o.FlushTimeout)
	err := bp.p.Publish(ctx, pb.topic, events...)
	cancel()
	var pe *crossbus.PublishError
	if err != nil && !errors.As(err, &pe) {
		for _, r := range pb.reqs {
			r.err = err
			close(r.done)
		}
		return
	}
	var failed []crossbus.EventError
	if pe != nil {
		failed = pe.Failed
	}
	offset := 0
	for _, r := range pb.reqs {
		end := offset + len(r.events)
		var mine []crossbus.EventError
		for _, f := range failed {
			if f.Index >= offset && f.Index < end {
				f.Index -= offset
				mine = append(mine, f)
			}
		}
		if mine != nil {
			r.err = &crossbus.PublishError{Failed: mine}
		}
		close(r.done)
		offset = end
	}
}

// Pending returns how many events wait to be sent.
func (bp *Publisher) Pending() int {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	n := 0
	for _, pb := range bp.pending {
		n += pb.count
	}
	return n
}

// Flush sends every pending batch now and waits until they and the sends
// already under way have finished, or until ctx ends.
func (bp *Publisher) Flush(ctx context.Context) error {
	bp.mu.Lock()
	for _, pb := range bp.pending {
		bp.detach(pb)
	}
	waits := make([]chan struct{}, 0, len(bp.sending))
	for pb := range bp.sending {
		waits = append(waits, pb.sent)
	}
	bp.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("batching: batch publisher: flush: %w", ctx.Err())
		}
	}
	return nil
}

// Close refuses further publishes, sends what is pending and waits for the
// sends until ctx ends. It does not close the underlying crossbus.Publisher.
func (bp *Publisher) Close(ctx context.Context) error {
	bp.mu.Lock()
	bp.closed = true
	bp.mu.Unlock()
	return bp.Flush(ctx)
}
