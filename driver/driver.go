// Package driver is the contract between crossbus's portable layer and its
// providers: what a cloud or broker adapter implements (Provider, Receiver,
// Delivery), what it declares (Capabilities), and the errors both sides
// match. Application code never imports it; it imports
// github.com/crossbus/crossbus, which re-exports the sentinel errors. A
// provider imports this package for the contract and the root package only
// to register its URL scheme (crossbus.Register) and for the event helpers
// (crossbus.NewEvent, crossbus.Validate, ...).
//
// The contract is deliberately small, as database/sql's driver package is:
// everything a provider would otherwise repeat — validation, batching to
// limits, retries, dead-lettering, idempotency, ordering, tracing, bounded
// shutdown — lives once in the portable layer. providers/providertest
// proves every duty stated here against a real server or emulator.
//
// # Writing a provider
//
//   - Publish a batch of valid events to a topic, in order; report per-event
//     failures with a *crossbus.PublishError.
//   - Deliver a subscription's messages through a Receiver; each Delivery is
//     an independent copy of its event, settled exactly once by Ack, Nack
//     (with a delay, when DelayedRedelivery) or DeadLetter (when
//     NativeDeadLetter).
//   - Map the service's errors to the sentinels in this package (a Receive
//     error the subscription cannot recover from must wrap one of the fatal
//     ones; see Receiver).
//   - Hand messages that are not CloudEvents to the portable layer as
//     Undecodable deliveries.
//   - Declare Capabilities truthfully; expose the native client through As;
//     name the messaging system (MessagingSystem).
//   - Register a URL scheme in init with crossbus.Register.
package driver

import (
	"context"
	"net/url"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Event is a CloudEvent: the CloudEvents SDK's event type (crossbus.Event is
// the same type).
type Event = event.Event

// Opener opens a provider from its URL. Providers register one per scheme
// with crossbus.Register.
type Opener func(ctx context.Context, u *url.URL) (Provider, error)

// Provider is the driver a cloud or broker adapter implements: it only maps.
// Validation, batching to limits, retries, dead-lettering, idempotency,
// ordering and graceful shutdown live once in the portable layer (crossbus.Bus, crossbus.Router),
// so a Provider never re-implements them. Providers register a URL scheme with
// crossbus.Register; users reach them through crossbus.Open.
//
// A Provider must be safe for concurrent use.
type Provider interface {
	// Publish sends the events to topic, in order. Events arrive valid and
	// within the limits the provider declared in Capabilities. It returns nil
	// when every event was accepted; a *crossbus.PublishError whose
	// indexes refer to events when only some were; any other error when none were.
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
	// FilterPattern is the route's filter as a canonical EventBridge event
	// pattern (JSON), or "" when the route has no filter or one that is not
	// an event pattern. A provider that creates the subscription may
	// install an equivalent native filter (a Pub/Sub subscription filter, a
	// Service Bus rule, an EventBridge rule) to save traffic, never to
	// change results: the native filter must select every event the
	// pattern matches. The portable layer applies the filter to every
	// delivery unless the receiver reports, through NativeFiltering, that
	// its subscription's native filter is exactly the pattern.
	FilterPattern string
}

// NativeFilter describes the filter a subscription applies in the service,
// before anything is delivered.
type NativeFilter struct {
	// Expression is the filter as the service holds it: a Pub/Sub filter,
	// a Service Bus SQL expression, an EventBridge event pattern.
	Expression string
	// Exact reports that Expression selects exactly the events
	// SubscriptionSpec.FilterPattern matches (among events in the form
	// crossbus publishes), so the portable layer skips its own matching.
	// A provider reports it only when it knows the subscription's filter
	// is its exact translation of the pattern (it installed it, or read it
	// back); otherwise the filter is a superset and the portable layer
	// matches every delivery.
	Exact bool
}

// NativeFiltering is implemented by receivers whose subscription has a
// native filter. Receivers without one do not implement it, or return a
// NativeFilter with an empty Expression.
type NativeFiltering interface {
	NativeFilter() NativeFilter
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
	// Event is the delivered event. Do not modify it. A provider must not
	// reuse it once the delivery settles: the engine logs from it after
	// settling and a handler may keep it after returning.
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

// LeaseExtender is implemented by deliveries whose lease can be extended while
// a handler runs.
type LeaseExtender interface {
	// ExtendLease keeps the delivery leased for d from now.
	ExtendLease(ctx context.Context, d time.Duration) error
}

// MessagingSystem is implemented by providers to name their system for the
// OpenTelemetry messaging.system attribute of every span and metric
// ("gcp_pubsub", "aws_sqs", "servicebus", "kafka", "nats", ...). Every
// provider in this module implements it.
type MessagingSystem interface {
	MessagingSystem() string
}
