package servicebus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// lockRenewer renews a message lock: *azservicebus.Receiver.
type lockRenewer interface {
	RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.RenewMessageLockOptions) error
}

// settler is what settles a peek-locked message: *azservicebus.Receiver
// and *azservicebus.SessionReceiver.
type settler interface {
	CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error
}

const (
	stateOpen int32 = iota
	stateBusy
	stateSettled
)

// delivery is one peek-locked message. Settling calls go to the SDK; a
// failed call leaves the delivery open so another outcome can be tried.
type delivery struct {
	set settler
	msg *azservicebus.ReceivedMessage
	ev  *driver.Event
	// decodeErr says why a message that claims to be a CloudEvent is not
	// one; ev is then its placeholder (UndecodableEvent).
	decodeErr error
	attempt   int
	received  time.Time
	dead      bool   // from the dead-letter sub-queue
	prefix    string // application property prefix for the dead-letter extensions

	renew  lockRenewer // nil: the receiver keeps the lock (sessions)
	delays *delayer
	done   func() // called once the message is settled on the broker

	state  atomic.Int32
	lockMu sync.Mutex // serialises lock renewals (they write msg.LockedUntil)
}

func (d *delivery) Event() *driver.Event { return d.ev }
func (d *delivery) Attempt() int         { return d.attempt }

// DecodeError implements driver.Undecodable: nil unless the message
// claims to be a CloudEvent and is not a valid one.
func (d *delivery) DecodeError() error { return d.decodeErr }

func (d *delivery) begin() error {
	if d.state.CompareAndSwap(stateOpen, stateBusy) {
		return nil
	}
	return fmt.Errorf("servicebus: delivery of event %q is already settled", d.ev.ID())
}

// end finishes a settle call: on success the delivery is settled.
func (d *delivery) end(err error, finished bool) error {
	if err != nil {
		d.state.Store(stateOpen)
		return settleError(d.ev.ID(), err)
	}
	d.state.Store(stateSettled)
	if finished && d.done != nil {
		d.done()
	}
	return nil
}

// Ack completes the message.
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.begin(); err != nil {
		return err
	}
	return d.end(d.set.CompleteMessage(ctx, d.msg, nil), true)
}

// Nack abandons the message, which Service Bus makes available again with
// its delivery count raised. Service Bus cannot delay an abandon, so for a
// positive delay the provider keeps the message locked (renewing the lock
// as needed) and abandons it when the delay has passed; if this process
// stops meanwhile, the lock expires and Service Bus redelivers the message
// then (at-least-once, possibly earlier than asked).
func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	if err := d.begin(); err != nil {
		return err
	}
	if delay > 0 && d.delays != nil {
		return d.end(d.delays.hold(d, delay), false)
	}
	return d.end(d.set.AbandonMessage(ctx, d.msg, nil), true)
}

// DeadLetter moves the message to the entity's dead-letter sub-queue with
// the reason (DeadLetterReason: its first line; DeadLetterErrorDescription:
// all of it) and crossbus's dead-letter extensions as application
// properties, so the dead letter reads back with driver.DeadLetterInfoOf.
func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	if d.dead {
		return fmt.Errorf("servicebus: event %q is already a dead letter: %w", d.ev.ID(), driver.ErrNotSupported)
	}
	if err := d.begin(); err != nil {
		return err
	}
	return d.end(d.set.DeadLetterMessage(ctx, d.msg, deadLetterOptions(d.ev, info, d.prefix)), true)
}

// ExtendLease renews the message lock when it would end within d.
func (d *delivery) ExtendLease(ctx context.Context, dur time.Duration) error {
	if d.renew == nil || d.state.Load() == stateSettled {
		return nil
	}
	d.lockMu.Lock()
	defer d.lockMu.Unlock()
	if d.msg.LockedUntil != nil && time.Until(*d.msg.LockedUntil) > dur {
		return nil
	}
	if err := d.renew.RenewMessageLock(ctx, d.msg, nil); err != nil {
		return settleError(d.ev.ID(), err)
	}
	return nil
}

// lockSpan is the entity's lock duration as observed on this message
// (d.lockMu held).
func (d *delivery) lockSpan() time.Duration {
	if d.msg.LockedUntil == nil {
		return time.Second
	}
	return max(d.msg.LockedUntil.Sub(d.received), time.Second)
}

func settleError(id string, err error) error {
	if hasCode(err, azservicebus.CodeLockLost) {
		return fmt.Errorf("servicebus: event %q: message lock lost (it expired and Service Bus redelivers the message): %w", id, err)
	}
	return fmt.Errorf("servicebus: settle event %q: %w", id, err)
}

// deadLetterOptions carries the dead-letter info as Service Bus's reason
// and description and as crossbus's extension properties.
func deadLetterOptions(ev *driver.Event, info driver.DeadLetterInfo, prefix string) *azservicebus.DeadLetterOptions {
	marked := driver.DeadLetterEvent(&driver.Event{Context: ev.Context.Clone()}, info)
	props := map[string]any{}
	for _, name := range []string{driver.ExtDeadLetterReason, driver.ExtDeadLetterAttempts, driver.ExtDeadLetterTopic,
		driver.ExtDeadLetterSubscription, driver.ExtDeadLetterTime} {
		if v, ok := marked.Extensions()[name]; ok {
			if pv, err := propertyValue(v); err == nil {
				props[prefix+name] = pv
			}
		}
	}
	full := crossbus.ExtensionString(&marked, driver.ExtDeadLetterReason)
	reason, _, _ := strings.Cut(full, "\n")
	reason = driver.TruncateUTF8(reason, 256)
	return &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &full, PropertiesToModify: props}
}

// delayer holds nacked messages locked until their delay has passed, then
// abandons them.
type delayer struct {
	mu      sync.Mutex
	closed  bool
	timers  map[*delivery]*time.Timer
	running sync.WaitGroup
}

func newDelayer() *delayer { return &delayer{timers: map[*delivery]*time.Timer{}} }

var errDelayerClosed = errors.New("servicebus: receiver closing; the message returns when its lock expires")

func (dl *delayer) hold(d *delivery, delay time.Duration) error {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.closed {
		return errDelayerClosed
	}
	dl.arm(d, time.Now().Add(delay))
	return nil
}

// arm sets the next timer: the abandon when due, or a lock renewal first
// when the lock would end before then (dl.mu held).
func (dl *delayer) arm(d *delivery, due time.Time) {
	next := due
	d.lockMu.Lock() // the lease extender may be renewing this lock right now
	if d.renew != nil && d.msg.LockedUntil != nil {
		if renewAt := d.msg.LockedUntil.Add(-d.lockSpan() / 3); renewAt.Before(due) {
			next = renewAt
		}
	}
	d.lockMu.Unlock()
	dl.timers[d] = time.AfterFunc(time.Until(next), func() { dl.fire(d, due) })
}

func (dl *delayer) fire(d *delivery, due time.Time) {
	dl.mu.Lock()
	if dl.closed || dl.timers[d] == nil {
		dl.mu.Unlock()
		return
	}
	delete(dl.timers, d)
	dl.running.Add(1)
	dl.mu.Unlock()
	defer dl.running.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if time.Now().Before(due) {
		d.lockMu.Lock()
		err := d.renew.RenewMessageLock(ctx, d.msg, nil)
		d.lockMu.Unlock()
		if err != nil { // lock lost: Service Bus redelivers it already
			if d.done != nil {
				d.done()
			}
			return
		}
		dl.mu.Lock()
		if !dl.closed {
			dl.arm(d, due)
		}
		dl.mu.Unlock()
		return
	}
	_ = d.set.AbandonMessage(ctx, d.msg, nil) // on failure the lock expires: same outcome, later
	if d.done != nil {
		d.done()
	}
}

// close stops every timer; held messages return when their locks expire.
func (dl *delayer) close() {
	dl.mu.Lock()
	dl.closed = true
	for _, t := range dl.timers {
		t.Stop()
	}
	dl.timers = map[*delivery]*time.Timer{}
	dl.mu.Unlock()
	dl.running.Wait()
}
