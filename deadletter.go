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
