package servicebus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/crossbus/crossbus/driver"
)

const (
	// sessionBatch is how many messages a session receive asks for: one.
	// The SDK releases messages that arrive after ReceiveMessages returned
	// (on leftover credit), and a released message can then be sent again
	// behind a later one; with a single credit in flight there is never a
	// later message to overtake it, so session order holds.
	sessionBatch  = 1
	probeTimeout  = time.Second      // Subscribe's check that the entity takes sessions
	acceptTimeout = 10 * time.Second // one wait for the next session with messages
)

// sessionReceiver consumes a session-enabled queue or subscription: up to
// MaxConcurrentSessions workers each lock one session, receive its messages
// in order, and release it once it has been idle for SessionIdleTimeout
// with nothing left unsettled, then accept the next session. Session locks
// are renewed while held, so deliveries need no lease extension.
type sessionReceiver struct {
	p      *Provider
	ent    entity
	caps   driver.Capabilities
	native driver.NativeFilter

	out     chan *delivery
	errs    chan error
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	closing chan struct{}
	wg      sync.WaitGroup
	delays  *delayer

	closeOnce sync.Once
}

// subscribeSessions checks that the entity exists and takes sessions, then
// starts the session workers.
func (p *Provider) subscribeSessions(ctx context.Context, ent entity, ordered bool) (driver.Receiver, error) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	first, err := p.acceptNext(pctx, ent)
	cancel()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, p.probe.explain(fmt.Errorf("servicebus: session receiver for %q: %w", ent.path(), ctx.Err()))
	case isNoSession(err):
		first = nil
	case isNotFound(err):
		return nil, receiveError(ent, err)
	case isCondition(err, amqp.ErrCondNotAllowed) && ordered:
		return nil, fmt.Errorf("servicebus: %w: ordered delivery on Service Bus uses sessions, and %q does not require sessions (create it with RequiresSession): %v",
			driver.ErrNotSupported, ent.path(), err)
	default:
		return nil, p.probe.explain(receiveError(ent, err))
	}
	caps := p.Capabilities()
	caps.LeaseExtension = false // the receiver renews session locks itself
	r := &sessionReceiver{p: p, ent: ent, caps: caps, out: make(chan *delivery, 2*p.opts.MaxConcurrentSessions),
		errs: make(chan error, 1), closing: make(chan struct{}), delays: newDelayer()}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for i := 0; i < p.opts.MaxConcurrentSessions; i++ {
		r.wg.Add(1)
		go r.work(first)
		first = nil
	}
	if !p.receivers.Add(r) {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("servicebus: session receiver for %q: %w", ent.path(), driver.ErrClosed)
	}
	return r, nil
}

func (p *Provider) acceptNext(ctx context.Context, ent entity) (*azservicebus.SessionReceiver, error) {
	if ent.queue {
		return p.client.AcceptNextSessionForQueue(ctx, ent.topic, nil)
	}
	return p.client.AcceptNextSessionForSubscription(ctx, ent.topic, ent.sub, nil)
}

// isNoSession reports that no session had messages within the wait.
func isNoSession(err error) bool {
	return hasCode(err, azservicebus.CodeTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// Capabilities of a session receiver: native per-key ordering.
func (r *sessionReceiver) Capabilities() driver.Capabilities { return r.caps }

// Receive returns deliveries from the sessions the workers hold.
func (r *sessionReceiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	select {
	case d := <-r.out:
		buf[0] = d
	case err := <-r.errs:
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-r.closing:
		return 0, fmt.Errorf("servicebus: receive from %q: %w", r.ent.path(), driver.ErrClosed)
	}
	n := 1
	for n < len(buf) {
		select {
		case d := <-r.out:
			buf[n] = d
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// report hands a worker's error to Receive (the portable layer logs it and
// backs off); a pending one is enough.
func (r *sessionReceiver) report(err error) {
	select {
	case r.errs <- receiveError(r.ent, err):
	default:
	}
}

func (r *sessionReceiver) work(sr *azservicebus.SessionReceiver) {
	defer r.wg.Done()
	failures := 0
	for r.ctx.Err() == nil {
		if sr == nil {
			actx, cancel := context.WithTimeout(r.ctx, acceptTimeout)
			s, err := r.p.acceptNext(actx, r.ent)
			cancel()
			switch {
			case r.ctx.Err() != nil:
				return
			case err == nil:
				sr, failures = s, 0
			case isNoSession(err):
				failures = 0
				continue
			default:
				r.report(err)
				failures++
				select {
				case <-time.After(min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)):
				case <-r.ctx.Done():
				}
				continue
			}
		}
		r.runSession(sr)
		sr = nil
	}
	if sr != nil {
		r.closeSession(sr)
	}
}

// heldSession counts a session's unsettled deliveries.
type heldSession struct {
	mu      sync.Mutex
	pending int
	settled chan struct{}
}

func (h *heldSession) add() {
	h.mu.Lock()
	h.pending++
	h.mu.Unlock()
}

func (h *heldSession) done() {
	h.mu.Lock()
	h.pending--
	zero := h.pending == 0
	h.mu.Unlock()
	if zero {
		select {
		case h.settled <- struct{}{}:
		default:
		}
	}
}

func (h *heldSession) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pending
}

// runSession receives one session's messages until it is idle and settled.
func (r *sessionReceiver) runSession(sr *azservicebus.SessionReceiver) {
	defer r.closeSession(sr)
	stopRenew := r.renewSession(sr)
	defer stopRenew()
	held := &heldSession{settled: make(chan struct{}, 1)}
	for {
		rctx, cancel := context.WithTimeout(r.ctx, r.p.opts.SessionIdleTimeout)
		msgs, err := sr.ReceiveMessages(rctx, sessionBatch, nil)
		cancel()
		if r.ctx.Err() != nil {
			r.abandonAll(sr, msgs)
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if !hasCode(err, azservicebus.CodeLockLost) {
				r.report(err)
			}
			return
		}
		if len(msgs) == 0 {
			if held.count() == 0 {
				return // idle and settled: move on to another session
			}
			for held.count() > 0 {
				select {
				case <-held.settled:
				case <-r.ctx.Done():
					return
				}
			}
			continue // one more look before letting the session go
		}
		now := time.Now()
		for i, m := range msgs {
			d := r.delivery(sr, m, held, now)
			held.add()
			select {
			case r.out <- d:
			case <-r.closing:
				held.done()
				r.abandonAll(sr, msgs[i:])
				return
			}
		}
	}
}

// delivery decodes m; a message that claims to be a CloudEvent and is not
// one is undecodable (see receiver.delivery).
func (r *sessionReceiver) delivery(sr *azservicebus.SessionReceiver, m *azservicebus.ReceivedMessage, held *heldSession, now time.Time) *delivery {
	ev, err := EventFromMessage(m, r.ent.topic)
	d := &delivery{set: sr, msg: m, ev: ev, attempt: max(int(m.DeliveryCount), 1), received: now, prefix: r.p.opts.PropertyPrefix,
		delays: r.delays, done: held.done}
	if err != nil {
		d.ev, d.decodeErr = UndecodableEvent(m, r.ent.topic), err
	}
	return d
}

// renewSession keeps the session lock while the session is held.
func (r *sessionReceiver) renewSession(sr *azservicebus.SessionReceiver) (stop func()) {
	span := time.Until(sr.LockedUntil())
	if sr.LockedUntil().IsZero() || span <= 0 {
		span = r.p.opts.LockDuration
	}
	t := time.NewTicker(max(span/2, 500*time.Millisecond))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
				_ = sr.RenewSessionLock(ctx, nil) // a lost lock shows up as a receive error
				cancel()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (r *sessionReceiver) abandonAll(sr *azservicebus.SessionReceiver, msgs []*azservicebus.ReceivedMessage) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range msgs {
		_ = sr.AbandonMessage(ctx, m, nil)
	}
}

func (r *sessionReceiver) closeSession(sr *azservicebus.SessionReceiver) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = sr.Close(ctx)
}

// Close stops the workers. Deliveries that were received but never handed
// out are abandoned; sessions are released.
func (r *sessionReceiver) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		close(r.closing)
		r.delays.close()
		r.drain()
		r.cancel()
		r.wg.Wait()
		r.drain()
		r.p.receivers.Remove(r)
	})
	return nil
}

// drain abandons the deliveries waiting in the hand-over channel.
func (r *sessionReceiver) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		select {
		case d := <-r.out:
			if d.begin() == nil {
				_ = d.end(d.set.AbandonMessage(ctx, d.msg, nil), true)
			}
		default:
			return
		}
	}
}
