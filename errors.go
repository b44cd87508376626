package crossbus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/eventpattern"

	"github.com/crossbus/crossbus/internal/errtext"
)

// Sentinel errors. Errors returned by crossbus and its providers wrap these, so
// callers test them with errors.Is. Each is returned where its comment says.
var (
	// ErrClosed: the bus, subscription or provider is closed (Publish,
	// Subscribe after Close; Router.Run when its bus closes).
	ErrClosed = driver.ErrClosed
	// ErrTopicNotFound: the topic does not exist (Publish, Subscribe, or a
	// running subscription whose topic was deleted).
	ErrTopicNotFound = driver.ErrTopicNotFound
	// ErrSubscriptionNotFound: the subscription does not exist, or was
	// deleted while a consumer ran (Subscription.Err).
	ErrSubscriptionNotFound = driver.ErrSubscriptionNotFound
	// ErrUnauthorized: the provider refused the credentials or the
	// permission (Publish, Subscribe, Subscription.Err).
	ErrUnauthorized = driver.ErrUnauthorized
	// ErrTooLarge: an event or batch is over the provider's size limit
	// (Publish; see SizeError).
	ErrTooLarge = driver.ErrTooLarge
	// ErrInvalidEvent: an event is not a valid CloudEvent (Publish, Validate;
	// see ValidationError).
	ErrInvalidEvent = driver.ErrInvalidEvent
	// ErrInvalidData: an event's data does not decode (DataAs, Typed; see
	// DataError). Such failures are permanent.
	ErrInvalidData = driver.ErrInvalidData
	// ErrInvalidName: a topic or subscription name is outside the portable
	// name rule (Publish, Subscribe, Router.Handle; see ValidateName).
	ErrInvalidName = driver.ErrInvalidName
	// ErrUnknownScheme: Open was given a URL whose scheme no provider
	// registered.
	ErrUnknownScheme = driver.ErrUnknownScheme
	// ErrInvalidURL: Open was given a malformed provider URL.
	ErrInvalidURL = driver.ErrInvalidURL
	// ErrInvalidOption: an option or argument is out of range (where it is
	// given: NewRouter, Router.Handle, Subscribe, With... options).
	ErrInvalidOption = driver.ErrInvalidOption
	// ErrNotSupported: the provider cannot do what was asked natively; the
	// portable layer falls back where it can.
	ErrNotSupported = driver.ErrNotSupported
	// ErrInProgress: another consumer is handling the same event right now
	// (idempotency); the delivery is retried later without spending an
	// attempt.
	ErrInProgress = errors.New("crossbus: duplicate event in progress")
	// ErrHandlersAbandoned: a shutdown deadline passed while handlers still
	// ran; they were abandoned (Subscription.Close, Bus.Close, Router.Run;
	// see AbandonedError).
	ErrHandlersAbandoned = errors.New("crossbus: handlers abandoned at shutdown")
	// ErrLeaseLost: an idempotency claim's token no longer holds its key
	// (IdempotencyStore.Renew, Complete, Release): the lease ran out and
	// another consumer took it, or the record expired.
	ErrLeaseLost = errors.New("crossbus: idempotency lease lost")
	// ErrPanic is matched by the error a recovered handler panic becomes.
	ErrPanic = errors.New("crossbus: handler panicked")
	// ErrInvalidPattern: an event pattern is invalid (CompilePattern,
	// WithFilter, EventPattern.Err); the text names the JSON path and the
	// rule, e.g. "data.amount: numeric expects operator/value pairs".
	ErrInvalidPattern = eventpattern.ErrInvalidPattern
)

// SizeError reports an event or batch over a size limit. It matches ErrTooLarge.
type SizeError struct {
	EventID string // "" for a whole batch
	Size    int    // bytes, as driver.EncodedSize counts them
	Limit   int    // the provider's limit in bytes
}

func (e *SizeError) Error() string {
	if e.EventID == "" {
		return fmt.Sprintf("crossbus: batch is %d bytes, over the provider limit of %d bytes", e.Size, e.Limit)
	}
	return fmt.Sprintf("crossbus: event %q is %d bytes, over the provider limit of %d bytes", e.EventID, e.Size, e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }

// EventError is the failure of one event of a published batch.
type EventError struct {
	Index   int    // position in the slice given to Publish
	EventID string // the event's id
	Err     error
}

func (e EventError) Error() string {
	msg := "<nil>"
	if e.Err != nil {
		msg = withoutLibPrefix(e.Err.Error())
	}
	if e.EventID == "" || strings.Contains(msg, strconv.Quote(e.EventID)) {
		return fmt.Sprintf("event %d: %s", e.Index, msg)
	}
	return fmt.Sprintf("event %d (%q): %s", e.Index, e.EventID, msg)
}

// Unwrap returns the cause.
func (e EventError) Unwrap() error { return e.Err }

// PublishError lists the events of a batch that were not published. Publishing
// is atomic per event: every event not listed here was accepted by the
// provider, so a caller retries exactly the listed ones. errors.Is on a
// PublishError matches the cause of any failed event.
type PublishError struct {
	Failed []EventError
}

func (e *PublishError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "crossbus: %d event(s) not published: ", len(e.Failed))
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-3)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns the causes, so errors.Is and errors.As look into every failed
// event.
func (e *PublishError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// FailedIndexes returns the positions of the events that were not published.
func (e *PublishError) FailedIndexes() []int {
	idx := make([]int, len(e.Failed))
	for i, f := range e.Failed {
		idx[i] = f.Index
	}
	return idx
}

// AbandonedError reports handlers that were still running when a
// subscription's shutdown deadline (the drain timeout or the Close context's
// deadline, whichever came first) passed. Their deliveries were left
// unsettled, so the provider redelivers them; whatever the handlers return
// later is ignored. It matches ErrHandlersAbandoned and unwraps to the cause
// (context.DeadlineExceeded for a drain timeout, or the Close context's
// error).
type AbandonedError struct {
	Topic        string
	Subscription string
	Handlers     int           // handlers still running at the deadline
	Waited       time.Duration // how long the shutdown waited for them
	Cause        error
}

func (e *AbandonedError) Error() string {
	return fmt.Sprintf("crossbus: subscription %q of topic %q: %d handler(s) still running after %v were abandoned; their events are left to the provider for redelivery (%v)",
		e.Subscription, e.Topic, e.Handlers, e.Waited.Round(time.Millisecond), e.Cause)
}

// Is reports whether target is ErrHandlersAbandoned.
func (e *AbandonedError) Is(target error) bool { return target == ErrHandlersAbandoned }

// Unwrap returns the cause.
func (e *AbandonedError) Unwrap() error { return e.Cause }

// Permanent wraps err so that the delivery is dead-lettered at once instead of
// retried. Permanent(nil) is nil.
func Permanent(err error) error { return driver.Permanent(err) }

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent or is an ErrInvalidData (data that will never decode).
func IsPermanent(err error) bool { return driver.IsPermanent(err) }

func errNilOption(name string) error {
	return fmt.Errorf("%w: %s(nil)", ErrInvalidOption, name)
}

// libPrefix starts every error message of the library, once.
const libPrefix = "crossbus: "

// errorf is fmt.Errorf for errors of the portable layer: the message starts
// with "crossbus: " exactly once, however many crossbus errors it wraps
// (their own prefixes are dropped from the text; errors.Is and errors.As
// still reach them).
func errorf(format string, args ...any) error {
	return errtext.Errorf(libPrefix, nil, format, args...)
}

// withoutLibPrefix removes every "crossbus: " from a message.
func withoutLibPrefix(msg string) string {
	if !strings.Contains(msg, libPrefix) {
		return msg
	}
	return strings.ReplaceAll(msg, libPrefix, "")
}
