package crossbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// MaxDeadLetterReason bounds the reason text stamped on a dead letter (a
// panic's stack can be long; brokers limit property sizes).
const MaxDeadLetterReason = 4096

// DeadLetterEvent returns a copy of e carrying the dead-letter extensions
// (reason, attempts, origin topic, subscription, time). Providers with a
// native dead-letter queue use it to make their dead letters readable the
// same way as the portable ones.
func DeadLetterEvent(e *Event, info DeadLetterInfo) Event {
	c := e.Clone()
	c.SetExtension(ExtDeadLetterReason, truncateUTF8(info.Reason, MaxDeadLetterReason))
	c.SetExtension(ExtDeadLetterAttempts, int32(min(info.Attempts, 1<<31-1)))
	if info.Topic != "" {
		c.SetExtension(ExtDeadLetterTopic, info.Topic)
	}
	if info.Subscription != "" {
		c.SetExtension(ExtDeadLetterSubscription, info.Subscription)
	}
	t := info.Time
	if t.IsZero() {
		t = time.Now()
	}
	c.SetExtension(ExtDeadLetterTime, t.UTC().Format(time.RFC3339Nano))
	return c
}

// DeadLetterInfoOf reads the dead-letter extensions back from an event; ok is
// false when the event carries none.
func DeadLetterInfoOf(e *Event) (info DeadLetterInfo, ok bool) {
	if _, ok = extension(e, ExtDeadLetterReason); !ok {
		return info, false
	}
	info.Reason = ExtensionString(e, ExtDeadLetterReason)
	info.Attempts, _ = strconv.Atoi(ExtensionString(e, ExtDeadLetterAttempts))
	info.Topic = ExtensionString(e, ExtDeadLetterTopic)
	info.Subscription = ExtensionString(e, ExtDeadLetterSubscription)
	info.Time, _ = time.Parse(time.RFC3339Nano, ExtensionString(e, ExtDeadLetterTime))
	return info, true
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// deadLetter gives up on a delivery: natively when the provider can, else by
// publishing to the route's dead-letter topic and acking the original. If
// neither works the delivery is nacked, never dropped.
func (s *Subscription) deadLetter(sctx context.Context, span trace.Span, d Delivery, cause error, attempts int) {
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
	dl := DeadLetterEvent(d.Event(), info)
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

// ErrPanic is matched (errors.Is) by the error a recovered handler panic
// becomes.
var ErrPanic = errors.New("crossbus: handler panicked")

func (p *panicError) Is(target error) bool { return target == ErrPanic }
