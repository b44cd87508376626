package crossbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus/driver"
	"go.opentelemetry.io/otel/trace"
)

// DeadLetterInfo says why and when a delivery was given up on (see
// DeadLetterInfoOf).
type DeadLetterInfo = driver.DeadLetterInfo

// DeadLetterInfoOf reads the dead-letter extensions back from an event; ok is
// false when the event carries none.
func DeadLetterInfoOf(e *Event) (info DeadLetterInfo, ok bool) { return driver.DeadLetterInfoOf(e) }

// deadLetter gives up on a delivery: natively when the provider can, else by
// publishing to the route's dead-letter topic and acking the original. If
// neither works the delivery is nacked, never dropped.
func (s *Subscription) deadLetter(sctx context.Context, span trace.Span, d driver.Delivery, cause error, attempts int) {
	if s.abandoned.Load() {
		return // the shutdown left this delivery to the provider
	}
	info := DeadLetterInfo{Reason: cause.Error(), Attempts: attempts, Topic: s.topic, Subscription: s.name, Time: time.Now()}
	s.tel.deadLetter(sctx, span, info)
	// Settle even if the handler's context is cancelled; keep its span so the
	// dead letter's publish joins the event's trace.
	ctx := context.WithoutCancel(sctx)
	if s.caps.NativeDeadLetter {
		err := d.DeadLetter(ctx, info)
		if err == nil {
			s.stats.deadLettered.Add(1)
			s.log.Warn("crossbus: event dead-lettered", s.attrs(d, attempts, "reason", info.Reason)...)
			return
		}
		if !errors.Is(err, ErrNotSupported) || s.cfg.deadLetterTopic == "" {
			s.log.Error("crossbus: dead-letter failed; event returned for redelivery", s.attrs(d, attempts, "error", err)...)
			s.nack(d, s.cfg.retry.MaxBackoff)
			return
		}
	}
	dl := driver.DeadLetterEvent(d.Event(), info)
	if err := s.bus.Publish(ctx, s.cfg.deadLetterTopic, &dl); err != nil {
		s.log.Error("crossbus: publish to dead-letter topic failed; event returned for redelivery",
			s.attrs(d, attempts, "deadLetterTopic", s.cfg.deadLetterTopic, "error", err)...)
		s.nack(d, s.cfg.retry.MaxBackoff)
		return
	}
	s.stats.deadLettered.Add(1)
	s.log.Warn("crossbus: event dead-lettered", s.attrs(d, attempts, "deadLetterTopic", s.cfg.deadLetterTopic, "reason", info.Reason)...)
	s.ack(d)
}

// panicError is a recovered handler panic.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string {
	return fmt.Sprintf("handler panic: %v\n%s", p.value, p.stack)
}

func (p *panicError) Is(target error) bool { return target == ErrPanic }

// DeadLetters opens a receiver over the native dead-letter queue of a
// subscription, for operations tools: each delivery's event carries the
// dead-letter extensions (DeadLetterInfoOf); Ack removes it from the queue.
// It returns an error wrapping ErrNotSupported when the provider keeps no
// readable dead-letter queue; the route's dead-letter topic (a topic like
// any other) then holds its dead letters.
func (b *Bus) DeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	if err := checkNames(topic, subscription); err != nil {
		return nil, errorf("dead letters: %w", err)
	}
	r, ok := b.p.(driver.DeadLetterReader)
	if !ok || !b.caps.NativeDeadLetter {
		return nil, errorf("%w: dead letters of subscription %q: the provider keeps no readable dead-letter queue; read the route's dead-letter topic", ErrNotSupported, subscription)
	}
	recv, err := r.SubscribeDeadLetters(ctx, topic, subscription)
	if err != nil {
		return nil, errorf("dead letters of subscription %q of topic %q: %w", subscription, topic, err)
	}
	return recv, nil
}
