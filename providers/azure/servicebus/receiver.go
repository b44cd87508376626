package servicebus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/crossbus/crossbus/driver"
)

// maxReceive is the SDK's limit on messages per ReceiveMessages call.
const maxReceive = 5000

// Subscribe opens a peek-lock receiver on the subscription spec.Name of
// topic spec.Topic, or on the queue spec.Topic when it is one of
// Options.Queues. Ordered subscriptions, and any subscription whose entity
// requires sessions, receive through sessions (see the package
// documentation).
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if p.receivers.Closed() {
		return nil, fmt.Errorf("servicebus: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	ent := p.entity(spec.Topic, spec.Name)
	if p.opts.AutoCreate {
		if err := p.ensureEntity(ctx, ent, spec); err != nil {
			return nil, err
		}
	}
	var r driver.Receiver
	var err error
	if spec.Ordered {
		r, err = p.subscribeSessions(ctx, ent, true)
	} else {
		r, err = p.openReceiver(ctx, ent, false)
		if err != nil && requiresSessions(err) {
			r, err = p.subscribeSessions(ctx, ent, false)
		}
	}
	if err != nil {
		return nil, err
	}
	if !p.opts.AutoCreate {
		return r, nil
	}
	native := p.nativeFilter(ctx, ent, spec.FilterPattern)
	switch r := r.(type) {
	case *receiver:
		r.native = native
	case *sessionReceiver:
		r.native = native
	}
	return r, nil
}

// NativeFilter reports the subscription's rules as read when the receiver
// opened (with Options.AutoCreate; none otherwise).
func (r *receiver) NativeFilter() driver.NativeFilter { return r.native }

// NativeFilter reports the subscription's rules as read when the receiver
// opened (with Options.AutoCreate; none otherwise).
func (r *sessionReceiver) NativeFilter() driver.NativeFilter { return r.native }

// SubscribeDeadLetters opens a receiver on the dead-letter sub-queue of a
// subscription (or of a queue). Each event carries crossbus's dead-letter
// extensions (driver.DeadLetterInfoOf): those the provider wrote when it
// dead-lettered the message, or, for messages Service Bus dead-lettered
// itself (MaxDeliveryCountExceeded, TTLExpiredException, ...), ones made
// from DeadLetterReason, DeadLetterErrorDescription and the delivery count.
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	if p.receivers.Closed() {
		return nil, fmt.Errorf("servicebus: subscribe dead letters of %q: %w", subscription, driver.ErrClosed)
	}
	return p.openReceiver(ctx, p.entity(topic, subscription), true)
}

// openReceiver attaches a session-less receiver; a cheap peek proves the
// entity exists.
func (p *Provider) openReceiver(ctx context.Context, ent entity, dead bool) (*receiver, error) {
	var opts *azservicebus.ReceiverOptions
	if dead {
		opts = &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}
	}
	var sb *azservicebus.Receiver
	var err error
	if ent.queue {
		sb, err = p.client.NewReceiverForQueue(ent.topic, opts)
	} else {
		sb, err = p.client.NewReceiverForSubscription(ent.topic, ent.sub, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: receiver for %q: %w", ent.path(), err)
	}
	if _, err := sb.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: ptr(int64(math.MaxInt64))}); err != nil {
		_ = sb.Close(context.WithoutCancel(ctx))
		return nil, p.probe.explain(receiveError(ent, err))
	}
	caps := p.Capabilities()
	caps.Ordering = false
	r := &receiver{p: p, sb: sb, ent: ent, dead: dead, sem: make(chan struct{}, 1), caps: caps}
	if dead {
		r.caps.DelayedRedelivery, r.caps.MaxRedeliveryDelay = false, 0
	} else {
		r.delays = newDelayer()
	}
	if !p.receivers.Add(r) {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("servicebus: receiver for %q: %w", ent.path(), driver.ErrClosed)
	}
	return r, nil
}

func ptr[T any](v T) *T { return &v }

// requiresSessions reports the refusal of a session-less receiver on an
// entity that requires sessions.
func requiresSessions(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Condition == amqp.ErrCondNotAllowed && strings.Contains(strings.ToLower(ae.Description), "requires sessions")
}

// receiveError maps a receive error onto the crossbus sentinel it means:
// amqp:not-found (the entity was deleted, or never existed) is
// ErrSubscriptionNotFound (ErrTopicNotFound for a queue),
// amqp:unauthorized-access is ErrUnauthorized, and a disabled entity
// (com.microsoft:entity-disabled) is permanent until someone enables it
// again. A receive error wrapping any of them stops the subscription;
// everything else (lost connections, timeouts, busy servers) is retried.
func receiveError(ent entity, err error) error {
	switch {
	case isNotFound(err):
		return fmt.Errorf("servicebus: receive from %q: %w: %w", ent.path(), ent.notFound(), err)
	case isUnauthorized(err):
		return fmt.Errorf("servicebus: receive from %q: %w: %w", ent.path(), driver.ErrUnauthorized, err)
	case isCondition(err, condEntityDisabled):
		return driver.Permanent(fmt.Errorf("servicebus: receive from %q: the entity is disabled: %w", ent.path(), err))
	}
	return fmt.Errorf("servicebus: receive from %q: %w", ent.path(), err)
}

// condEntityDisabled is the condition of a link to an entity whose status
// is Disabled (or ReceiveDisabled, for receivers).
const condEntityDisabled amqp.ErrCond = "com.microsoft:entity-disabled"

// isUnauthorized reports refused credentials or a missing claim.
func isUnauthorized(err error) bool {
	return hasCode(err, azservicebus.CodeUnauthorizedAccess) || isCondition(err, amqp.ErrCondUnauthorizedAccess)
}

// receiver is a session-less peek-lock consumer. ReceiveMessages may not
// run concurrently on one SDK receiver, so Receive calls take turns; the
// deliveries are handled and settled concurrently.
type receiver struct {
	p      *Provider
	sb     *azservicebus.Receiver
	ent    entity
	dead   bool
	sem    chan struct{}
	caps   driver.Capabilities
	delays *delayer
	native driver.NativeFilter

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Capabilities of this receiver: no ordering (no sessions).
func (r *receiver) Capabilities() driver.Capabilities { return r.caps }

// Receive waits for messages and returns up to len(buf) deliveries. Errors
// are mapped by receiveError.
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-r.sem }()
	for {
		if r.closed.Load() {
			return 0, fmt.Errorf("servicebus: receive from %q: %w", r.ent.path(), driver.ErrClosed)
		}
		want := min(len(buf), maxReceive)
		if r.dead {
			want = 1
		}
		msgs, err := r.sb.ReceiveMessages(ctx, want, nil)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if r.closed.Load() || hasCode(err, azservicebus.CodeClosed) {
				return 0, fmt.Errorf("servicebus: receive from %q: %w", r.ent.path(), driver.ErrClosed)
			}
			return 0, receiveError(r.ent, err)
		}
		now := time.Now()
		for i, m := range msgs {
			buf[i] = r.delivery(m, now)
		}
		if len(msgs) > 0 {
			n := len(msgs)
			if r.dead {
				n = r.more(ctx, buf, n)
			}
			return n, nil
		}
	}
}

// followWait bounds the wait for each further message of a dead-letter
// receiver's Receive once it has one.
const followWait = 20 * time.Millisecond

// more fills buf after its first n deliveries with the messages that arrive
// one after another without a pause, asking for one at a time (see
// SubscribeDeadLetters).
func (r *receiver) more(ctx context.Context, buf []driver.Delivery, n int) int {
	for n < len(buf) && !r.closed.Load() {
		fctx, cancel := context.WithTimeout(ctx, followWait)
		msgs, err := r.sb.ReceiveMessages(fctx, 1, nil)
		cancel()
		if err != nil || len(msgs) == 0 {
			break
		}
		now := time.Now()
		for _, m := range msgs {
			buf[n] = r.delivery(m, now)
			n++
		}
	}
	return n
}

// delivery decodes m. A message that claims to be a CloudEvent and is not
// one is an undecodable delivery (driver.Undecodable) carrying the
// placeholder of UndecodableEvent, which the portable layer dead-letters; a
// dead letter read back keeps that placeholder, with the dead-letter
// extensions.
func (r *receiver) delivery(m *azservicebus.ReceivedMessage, now time.Time) *delivery {
	ev, err := EventFromMessage(m, r.ent.topic)
	d := &delivery{set: r.sb, renew: r.sb, msg: m, ev: ev, attempt: max(int(m.DeliveryCount), 1), received: now, prefix: r.p.opts.PropertyPrefix,
		dead: r.dead, delays: r.delays}
	if err != nil {
		d.ev = UndecodableEvent(m, r.ent.topic)
		if r.dead {
			withDeadLetterProperties(d.ev, m)
		} else {
			d.decodeErr = err
		}
	}
	if r.dead {
		d.ev = withDeadLetterInfo(d.ev, m, r.ent)
	}
	return d
}

// withDeadLetterInfo makes sure a dead letter carries the dead-letter
// extensions, deriving them from Service Bus's properties when crossbus did
// not write them.
func withDeadLetterInfo(ev *driver.Event, m *azservicebus.ReceivedMessage, ent entity) *driver.Event {
	if _, ok := driver.DeadLetterInfoOf(ev); ok {
		return ev
	}
	info := driver.DeadLetterInfo{Attempts: max(int(m.DeliveryCount)-1, 1), Topic: ent.topic}
	if !ent.queue {
		info.Subscription = ent.sub
	}
	if m.DeadLetterReason != nil {
		info.Reason = *m.DeadLetterReason
	}
	if m.DeadLetterErrorDescription != nil && *m.DeadLetterErrorDescription != "" {
		if info.Reason != "" {
			info.Reason += ": "
		}
		info.Reason += *m.DeadLetterErrorDescription
	}
	if info.Reason == "" {
		info.Reason = "dead-lettered by Service Bus"
	}
	if m.EnqueuedTime != nil {
		info.Time = *m.EnqueuedTime
	}
	out := driver.DeadLetterEvent(ev, info)
	return &out
}

// Close stops receiving. Messages held for a delayed nack stay locked
// until their locks expire; Service Bus then redelivers them.
func (r *receiver) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		if r.delays != nil {
			r.delays.close()
		}
		if err := r.sb.Close(ctx); err != nil {
			r.closeErr = fmt.Errorf("servicebus: close receiver of %q: %w", r.ent.path(), err)
		}
		r.p.receivers.Remove(r)
	})
	return r.closeErr
}
