package gcp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/crossbus/crossbus/driver"
)

// Delivery states.
const (
	pending uint32 = iota
	settled
)

// delivery is one pulled message. Settling it queues an Acknowledge or a
// ModifyAckDeadline for its ack id.
type delivery struct {
	r     *receiver
	b     *batch
	ackID string
	msgID string
	ev    driver.Event
	// decodeErr says why a message that claims to be a CloudEvent is not
	// one; ev is then its placeholder (pubsubwire.UndecodableEvent).
	decodeErr error
	attempt   int
	size      int
	state     atomic.Uint32
}

var (
	_ driver.Delivery      = (*delivery)(nil)
	_ driver.LeaseExtender = (*delivery)(nil)
	_ driver.Undecodable   = (*delivery)(nil)
)

// Event is the decoded event.
func (d *delivery) Event() *driver.Event { return &d.ev }

// DecodeError implements driver.Undecodable: the reason a message that
// claims to be a CloudEvent is not a valid one, nil for every other message.
func (d *delivery) DecodeError() error { return d.decodeErr }

// Attempt is Pub/Sub's delivery attempt when the subscription has a
// dead-letter policy (the only case in which Pub/Sub counts), else 1 plus
// the number of times this receiver handed the message back (Nack, or
// Close with the delivery unsettled).
func (d *delivery) Attempt() int { return d.attempt }

func (d *delivery) settle() error {
	if !d.state.CompareAndSwap(pending, settled) {
		return fmt.Errorf("gcp: delivery of message %s (event %q) is already settled", d.msgID, d.ev.ID())
	}
	d.r.release(d)
	return nil
}

func (d *delivery) queued(ok bool) error {
	if !ok {
		return fmt.Errorf("gcp: settle message %s: %w", d.msgID, driver.ErrClosed)
	}
	return nil
}

// Ack acknowledges the message. The acknowledgement is sent in the next
// batch, after Ack returns; if it is lost, Pub/Sub redelivers.
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.settle(); err != nil {
		return err
	}
	if d.r.attempts != nil {
		d.r.attempts.Forget(d.msgID)
	}
	return d.queued(d.r.settler.ack(d.ackID))
}

// Nack sets the message's ack deadline to delay (rounded up to whole
// seconds, at most 600s), after which Pub/Sub redelivers it; a delay of 0
// redelivers at once.
func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	if err := d.settle(); err != nil {
		return err
	}
	if d.r.attempts != nil {
		d.r.attempts.Failed(d.msgID)
	}
	return d.queued(d.r.settler.modack(leaseSeconds(delay), d.ackID))
}

// ExtendLease sets the message's ack deadline to dur from now (rounded up
// to whole seconds, at most 600s).
func (d *delivery) ExtendLease(ctx context.Context, dur time.Duration) error {
	if d.state.Load() != pending {
		return fmt.Errorf("gcp: extend lease of message %s: already settled", d.msgID)
	}
	return d.queued(d.r.settler.modack(max(leaseSeconds(dur), 1), d.ackID))
}

// DeadLetter publishes the event, with the crossbus dead-letter extensions,
// to the dead-letter topic of the subscription's dead-letter policy and
// acknowledges the message. Pub/Sub has no call to dead-letter a message on
// demand; it forwards by itself only after the policy's maximum delivery
// attempts. Without a policy it returns driver.ErrNotSupported, and when
// the dead-letter topic refuses the publish (no permission, deleted) the
// error wraps driver.ErrNotSupported too, so the route's own dead-letter
// topic is used if it has one.
func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	if d.r.dlTopic == "" {
		return fmt.Errorf("gcp: subscription %q has no dead-letter policy: %w", d.r.sub, driver.ErrNotSupported)
	}
	if d.state.Load() != pending {
		return fmt.Errorf("gcp: dead-letter message %s: already settled", d.msgID)
	}
	dl := driver.DeadLetterEvent(&d.ev, info)
	if err := d.r.p.publishOne(ctx, d.r.dlTopic, &dl); err != nil {
		switch grpcCode(err) {
		case codes.PermissionDenied, codes.NotFound:
			return fmt.Errorf("gcp: publish to dead-letter topic %q: %w: %w", d.r.dlTopic, driver.ErrNotSupported, err)
		}
		if errors.Is(err, driver.ErrTopicNotFound) {
			return fmt.Errorf("gcp: publish to dead-letter topic %q: %w: %w", d.r.dlTopic, driver.ErrNotSupported, err)
		}
		return fmt.Errorf("gcp: publish to dead-letter topic %q: %w", d.r.dlTopic, err)
	}
	return d.Ack(ctx)
}
