package crossbus

import (
	"context"
	"encoding/json"
	"time"
)

// Provider is the driver a cloud or broker adapter implements: it only maps.
// Validation, batching to limits, retries, dead-lettering, idempotency,
// ordering and graceful shutdown live once in the portable layer (Bus, Router),
// so a Provider never re-implements them. Providers register a URL scheme with
// Register; users reach them through Open.
//
// A Provider must be safe for concurrent use.
type Provider interface {
	// Publish sends the events to topic, in order. Events arrive valid and
	// within the limits the provider declared in Capabilities. It returns nil
	// when every event was accepted; a *PublishError whose indexes refer to
	// events when only some were; any other error when none were.
	Publish(ctx context.Context, topic string, events []*Event) error

	// Subscribe opens a receiver for a subscription. It returns an error
	// wrapping ErrTopicNotFound or ErrSubscriptionNotFound when an entity is
	// missing and the provider does not create it.
	Subscribe(ctx context.Context, spec SubscriptionSpec) (Receiver, error)

	// Capabilities reports what the provider does natively.
	Capabilities() Capabilities

	// As sets target to the provider's native client when target is a
	// pointer to its type, and reports whether it did (the escape hatch).
	As(target any) bool

	// Close releases the provider's resources. Receivers opened from it stop.
	Close(ctx context.Context) error
}

// SubscriptionSpec tells a provider which subscription to open and how the
// portable layer will use it.
type SubscriptionSpec struct {
	Topic string // the topic the subscription receives from
	Name  string // the subscription's name

	// Ordered asks for per-partition-key order (native ordering keys,
	// sessions, message groups) where the provider has it.
	Ordered bool
	// AckDeadline is how long a delivery stays leased to this consumer
	// before the provider redelivers it; 0 means the provider's default.
	AckDeadline time.Duration
	// MaxAttempts is the retry policy's attempt limit, for providers whose
	// native dead-letter policy counts deliveries.
	MaxAttempts int
	// DeadLetterTopic is the subscription's portable dead-letter topic
	// ("" when the provider's native dead-letter queue is used).
	DeadLetterTopic string
	// Filter is the route's filter (nil: every event). The portable layer
	// always applies it; a provider may push it down (see
	// EventBridgePattern, PubSubFilter, ServiceBusFilter) to save traffic.
	Filter Filter
}

// Capabilities describes what a provider (or one of its receivers) does
// natively. The portable layer fills every gap.
type Capabilities struct {
	// Ordering: events with the same partition key are delivered in publish
	// order, with at most one in flight per key across all consumers.
	Ordering bool
	// NativeDeadLetter: Delivery.DeadLetter moves the event to a
	// dead-letter queue kept by the provider.
	NativeDeadLetter bool
	// DelayedRedelivery: Delivery.Nack honours its delay, up to
	// MaxRedeliveryDelay.
	DelayedRedelivery  bool
	MaxRedeliveryDelay time.Duration
	// LeaseExtension: deliveries implement LeaseExtender.
	LeaseExtension bool
	// MaxEventBytes is the largest event, as EncodedSize counts it (0 = no limit).
	MaxEventBytes int
	// MaxBatchCount and MaxBatchBytes bound one Publish call (0 = no limit).
	MaxBatchCount int
	MaxBatchBytes int
	// DefaultAckDeadline is the lease when SubscriptionSpec.AckDeadline is 0.
	DefaultAckDeadline time.Duration
}

// Receiver yields the deliveries of one subscription.
type Receiver interface {
	// Receive blocks until at least one delivery is available, then fills
	// buf with up to len(buf) deliveries and returns how many. It returns
	// ctx.Err() when ctx ends and an error wrapping ErrClosed once closed.
	//
	// Errors that retrying cannot fix stop the subscription and are
	// reported to the application (Subscription.Err, Router.Run): an error
	// wrapping ErrSubscriptionNotFound or ErrTopicNotFound (the entity is
	// gone), ErrUnauthorized (credentials or permissions refused),
	// ErrInvalidOption or ErrNotSupported (the subscription's configuration
	// cannot work), or any error marked with Permanent. Every other error
	// is taken as transient and Receive is called again after a backoff.
	Receive(ctx context.Context, buf []Delivery) (int, error)

	// Close stops the receiver. Deliveries not yet settled are left to the
	// provider for redelivery.
	Close(ctx context.Context) error
}

// ReceiverCapabilities is implemented by receivers whose capabilities differ
// from their provider's (for example a subscription that has a native
// dead-letter policy when others of the same provider do not).
type ReceiverCapabilities interface {
	Capabilities() Capabilities
}

// Delivery is one delivery of an event to a consumer. Exactly one of Ack,
// Nack or DeadLetter settles it; calls after the first return an error.
type Delivery interface {
	// Event is the delivered event. Do not modify it.
	Event() *Event
	// Attempt is the delivery attempt, 1 for the first, as the provider
	// counts it (redeliveries included).
	Attempt() int
	// Ack settles the delivery as done.
	Ack(ctx context.Context) error
	// Nack returns the delivery for redelivery after delay (providers
	// without DelayedRedelivery ignore the delay).
	Nack(ctx context.Context, delay time.Duration) error
	// DeadLetter moves the event to the provider's dead-letter queue with
	// info. Providers without NativeDeadLetter return ErrNotSupported.
	DeadLetter(ctx context.Context, info DeadLetterInfo) error
}

// Undecodable is implemented by deliveries of messages that are not
// CloudEvents, or are malformed ones. When DecodeError returns an error, the
// delivery's Event is a placeholder built with NewUndecodableEvent that
// carries the raw message, and the portable layer dead-letters the delivery
// at once (natively, or to the route's dead-letter topic) with a reason that
// names the decode error, without running filters or the handler. Providers
// never dead-letter such messages themselves.
//
// Providers whose documented mapping turns every foreign message into an
// event (Pub/Sub messages without CloudEvents attributes become
// google.cloud.pubsub.topic.v1.messagePublished events; SQS and SNS native
// messages become their AWS event types) have no undecodable messages.
type Undecodable interface {
	DecodeError() error
}

// TypeUndecodable is the type of the placeholder event an Undecodable
// delivery carries; ExtRawHeaders holds the message's headers (or
// attributes, or application properties) as a JSON object of strings.
const (
	TypeUndecodable = "dev.crossbus.undecodable"
	ExtRawHeaders   = "rawheaders"
	// MaxRawHeaders bounds the rawheaders extension; larger header sets
	// are left out.
	MaxRawHeaders = 8 << 10
)

// NewUndecodableEvent returns the placeholder event of a message that is not
// a CloudEvent: id and source identify the message in its system (for
// example a stream and sequence number), data is the raw payload as
// application/octet-stream, and headers, when given, are kept as JSON in the
// rawheaders extension (up to MaxRawHeaders bytes).
func NewUndecodableEvent(id, source string, payload []byte, headers map[string]string) Event {
	e := NewEvent(TypeUndecodable, source)
	if id != "" {
		e.SetID(id)
	}
	e.SetDataContentType("application/octet-stream")
	e.DataEncoded = payload
	e.DataBase64 = true
	if len(headers) > 0 {
		if b, err := json.Marshal(headers); err == nil && len(b) <= MaxRawHeaders {
			e.SetExtension(ExtRawHeaders, string(b))
		}
	}
	return e
}

// LeaseExtender is implemented by deliveries whose lease can be extended while
// a handler runs.
type LeaseExtender interface {
	// ExtendLease keeps the delivery leased for d from now.
	ExtendLease(ctx context.Context, d time.Duration) error
}

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
