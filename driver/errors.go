package driver

import "errors"

// Sentinel errors, defined once for both sides of the contract: providers
// wrap them, the portable layer and applications match them with errors.Is
// (the root package re-exports each as crossbus.ErrX).
var (
	// ErrClosed: the bus, subscription or provider is closed.
	ErrClosed = errors.New("crossbus: closed")
	// ErrTopicNotFound: the topic does not exist.
	ErrTopicNotFound = errors.New("crossbus: topic not found")
	// ErrSubscriptionNotFound: the subscription does not exist (or was
	// deleted while a consumer ran).
	ErrSubscriptionNotFound = errors.New("crossbus: subscription not found")
	// ErrUnauthorized: the provider refused the credentials or the
	// permission for the operation.
	ErrUnauthorized = errors.New("crossbus: unauthorized")
	// ErrTooLarge: an event or batch is over the provider's size limit.
	ErrTooLarge = errors.New("crossbus: too large")
	// ErrInvalidEvent: an event is not a valid CloudEvent.
	ErrInvalidEvent = errors.New("crossbus: invalid event")
	// ErrInvalidData: an event's data does not decode.
	ErrInvalidData = errors.New("crossbus: invalid event data")
	// ErrInvalidName: a topic or subscription name is outside the portable
	// name rule.
	ErrInvalidName = errors.New("crossbus: invalid name")
	// ErrUnknownScheme: a URL's scheme has no registered provider.
	ErrUnknownScheme = errors.New("crossbus: unknown URL scheme")
	// ErrInvalidURL: a provider URL is malformed.
	ErrInvalidURL = errors.New("crossbus: invalid provider URL")
	// ErrInvalidOption: an option value is out of range.
	ErrInvalidOption = errors.New("crossbus: invalid option")
	// ErrNotSupported: the provider cannot do what was asked natively; the
	// portable layer falls back where it can.
	ErrNotSupported = errors.New("crossbus: not supported by provider")
)

// permanentError marks an error as not worth retrying.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return "permanent: " + p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that retrying it is known to be pointless: a
// handler error marked with it dead-letters the event at once, and a
// Receive error marked with it stops the subscription. Permanent(nil) is
// nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent or is an ErrInvalidData (data that will never decode).
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p) || errors.Is(err, ErrInvalidData)
}
