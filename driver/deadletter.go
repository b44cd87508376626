package driver

import (
	"context"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/types"
)

// Extension attributes of a dead letter: why and when it was given up on,
// after how many attempts, by which subscription of which topic.
const (
	// ExtDeadLetterReason says why an event was dead-lettered.
	ExtDeadLetterReason = "deadletterreason"
	// ExtDeadLetterAttempts is how many handling attempts were made.
	ExtDeadLetterAttempts = "deadletterattempts"
	// ExtDeadLetterTopic is the topic the event was originally published to.
	ExtDeadLetterTopic = "deadlettertopic"
	// ExtDeadLetterSubscription is the subscription that gave up on the event.
	ExtDeadLetterSubscription = "deadlettersubscription"
	// ExtDeadLetterTime is when the event was dead-lettered (RFC 3339).
	ExtDeadLetterTime = "deadlettertime"
)

// MaxDeadLetterReason bounds the reason text stamped on a dead letter (a
// panic's stack can be long; brokers limit property sizes).
const MaxDeadLetterReason = 4096

// DeadLetterInfo says why and when a delivery was given up on.
type DeadLetterInfo struct {
	Reason       string
	Attempts     int
	Topic        string // the topic the event came from
	Subscription string
	Time         time.Time
}

// DeadLetterReader is implemented by providers whose native dead-letter queue
// can be read: it opens a receiver over the dead letters of a subscription.
type DeadLetterReader interface {
	SubscribeDeadLetters(ctx context.Context, topic, subscription string) (Receiver, error)
}

// DeadLetterEvent returns a copy of e carrying the dead-letter extensions
// (reason, attempts, origin topic, subscription, time). Providers with a
// native dead-letter queue use it to make their dead letters readable the
// same way as the portable ones.
func DeadLetterEvent(e *Event, info DeadLetterInfo) Event {
	c := e.Clone()
	c.SetExtension(ExtDeadLetterReason, TruncateUTF8(info.Reason, MaxDeadLetterReason))
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
	ext := e.Context.AsV1().Extensions
	if _, ok = ext[ExtDeadLetterReason]; !ok {
		return info, false
	}
	str := func(name string) string {
		v, ok := ext[name]
		if !ok {
			return ""
		}
		if s, err := types.ToString(v); err == nil {
			return s
		}
		s, _ := types.Format(v)
		return s
	}
	info.Reason = str(ExtDeadLetterReason)
	info.Attempts, _ = strconv.Atoi(str(ExtDeadLetterAttempts))
	info.Topic = str(ExtDeadLetterTopic)
	info.Subscription = str(ExtDeadLetterSubscription)
	info.Time, _ = time.Parse(time.RFC3339Nano, str(ExtDeadLetterTime))
	return info, true
}

// TruncateUTF8 shortens s to at most n bytes without splitting a UTF-8
// sequence, for values that brokers limit in size.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
