// Package gcp is the Google Cloud Pub/Sub provider for crossbus, on the
// current Pub/Sub client (cloud.google.com/go/pubsub/v2). Import it for its
// side effect to make "gcppubsub://" URLs work:
//
//	import _ "github.com/crossbus/crossbus/providers/gcp"
//
//	bus, err := crossbus.Open(ctx, "gcppubsub://projects/my-project")
//
// Topics and subscriptions are named by the arguments of Publish and
// Subscribe: the Bus takes portable names (crossbus.ValidateName), which
// belong to the URL's project; resource names ("projects/P/topics/T", for
// other projects) are not portable names and are accepted only by the
// Provider's own methods. Credentials come from
// Application Default Credentials; PUBSUB_EMULATOR_HOST points the client
// at an emulator. URL parameters (see OptionsFromURL) set the endpoint
// (endpoint=host:port, insecure=true for emulators), publish batching
// (publishdelay, publishcount, publishbytes), receive flow control
// (maxoutstandingmessages, maxoutstandingbytes), the default lease
// (ackdeadline), the content mode (contentmode=binary|structured), the
// spelling of the content-type attribute (attributespelling=google|sdk), ordering
// keys (orderingkeys=false) and provisioning (autocreate=true, for
// development). The HTTP push receiver for Eventarc, Cloud Run and Pub/Sub
// push subscriptions is in the sub-package push.
//
// # Events on the wire
//
// Events follow Google's CloudEvents binding for Pub/Sub (see package
// pubsubwire): binary mode with lower-case "ce-" attributes, "content-type"
// for datacontenttype and the data as the message body; structured mode
// (application/cloudevents+json) per event when the attributes would break
// Pub/Sub's limits (100 attributes, 256-byte keys, 1024-byte values).
// partitionkey becomes the ordering key. Options.AttributeSpelling
// (attributespelling=sdk) writes "Content-Type" instead, the only spelling
// the CloudEvents Go SDK's Pub/Sub binding reads; both are read. Messages
// that no CloudEvents
// producer wrote are delivered as google.cloud.pubsub.topic.v1.messagePublished
// events, the way Eventarc delivers them.
//
// Undecodable messages: since every message without CloudEvents attributes
// becomes a messagePublished event, only a message that claims to be a
// CloudEvent (a content-type attribute of application/cloudevents..., or a
// ce-specversion attribute) and is not a valid one is undecodable. The
// receiver hands it over as a driver.Undecodable delivery whose event is
// the placeholder of pubsubwire.UndecodableEvent (the data and attributes
// as they arrived); the portable layer dead-letters it (to the dead-letter
// policy's topic, or the route's dead-letter topic) with the reason
// "undecodable message: ..." and no handler runs.
//
// # Receiving
//
// Receivers pull with the Pull RPC and settle with Acknowledge and
// ModifyAckDeadline, rather than through the client's callback-based
// Subscriber.Receive. The crossbus contract needs what only the RPCs give:
// Delivery.Nack(delay) is ModifyAckDeadline(delay) on that message,
// LeaseExtender is ModifyAckDeadline, and a Receive(ctx, buf) call maps to
// one Pull of at most len(buf) messages, so nothing runs in the background
// per message and a closed receiver leaves no goroutine behind. The
// client's Receive would extend every lease by itself (undoing a delayed
// nack), run each message on its own goroutine, and allow settling only
// from inside its callback. The portable layer already provides what
// Receive adds: bounded concurrency, per-key ordering, lease extension.
//
// Flow control: a receiver holds at most MaxOutstandingMessages unsettled
// deliveries and MaxOutstandingBytes of their data (defaults 1000 and
// 1 GB); Receive pulls no more until deliveries are settled, and concurrent
// Receive calls together never ask for more messages than there is room
// for (bytes are known only after a pull, so that limit may be exceeded by
// one pull). Acknowledgements and deadline changes are queued and sent in
// batches after the settling call returns, like the client's own: by the
// next Receive call before it pulls (so the service knows what was
// finished before it hands out more), or within 5ms by the receiver's
// goroutine; a failed batch is logged (Options.Logger) and Pub/Sub
// redelivers. Close nacks the deliveries still unsettled (so they are
// redelivered at once) and sends what is queued.
//
// Settlement:
//
//   - Ack is Acknowledge.
//   - Nack(delay) is ModifyAckDeadline(delay rounded up to whole seconds,
//     at most 600s); Nack(0) is ModifyAckDeadline(0). Real Pub/Sub makes
//     the message eligible for redelivery when that deadline passes
//     (later, not earlier, if the subscription has a retry policy with a
//     larger minimum backoff; at-least-once delivery may still produce an
//     early duplicate). pstest honours the deadline exactly, checking it
//     on each pull, so redelivery comes up to 500ms after it.
//     Capabilities: DelayedRedelivery, MaxRedeliveryDelay 600s.
//   - ExtendLease(d) is ModifyAckDeadline(d), 1..600s.
//   - DeadLetter: see below.
//
// Receive errors: a Pull answered NotFound (the subscription was deleted)
// stops the subscription with driver.ErrSubscriptionNotFound, and
// PermissionDenied or Unauthenticated stop it with driver.ErrUnauthorized;
// Subscription.Err reports it. Every other code (Unavailable,
// ResourceExhausted, ...) is retried by the portable layer.
//
// # Attempts and dead letters
//
// Pub/Sub counts delivery attempts only for subscriptions with a
// dead-letter policy; their deliveries report that count as Attempt, and
// their receivers report NativeDeadLetter (ReceiverCapabilities).
// Delivery.DeadLetter then publishes the event, with the crossbus
// dead-letter extensions, to the policy's dead-letter topic and
// acknowledges it: Pub/Sub has no call to dead-letter a message on demand,
// it forwards by itself only after the policy's maximum delivery attempts
// (5..100). Keep that maximum at or above the route's retry limit so that
// the retry policy decides; messages Pub/Sub forwards itself carry
// CloudPubSubDeadLetter* attributes, which are read back as the dead-letter
// extensions. The consumer needs roles/pubsub.publisher on the
// dead-letter topic; if the publish is refused, DeadLetter fails with an
// error wrapping driver.ErrNotSupported and the route's own dead-letter
// topic, if it has one, is used instead. SubscribeDeadLetters reads the
// dead letters of a subscription from DeadLetterSubscriptionName(sub).
//
// Without a dead-letter policy, Attempt is 1 plus the number of times this
// receiver handed the message back (Nack, or Close while it was unsettled),
// kept by message id for up to 65,536 messages: exact for one consumer
// process, an undercount when redeliveries go to other processes or follow
// a lease that ran out. Such receivers report NativeDeadLetter false, and routes on
// them need WithDeadLetterTopic. Reading the subscription's settings needs
// pubsub.subscriptions.get (roles/pubsub.viewer or roles/pubsub.editor);
// with only roles/pubsub.subscriber the receiver assumes no dead-letter
// policy and the route's ordering.
//
// # Ordering
//
// With ordering keys (the default), publishers enable message ordering and
// set each message's ordering key from partitionkey. When a publish with
// an ordering key fails, the client pauses that key; Publish reports the
// failed event and every later event of the same key in the call (they
// were not sent, so nothing overtook the failure), then resumes the key,
// so the caller retries exactly the failed events, in order. Subscriptions
// deliver in order only when created with message ordering
// (SubscriptionConfig.Ordered); ordering holds among messages published to
// one region (use a regional Endpoint for publishers spread over regions).
// Pub/Sub releases a key's next message only after the previous one is
// acknowledged, so before each pull of an ordered subscription whose
// deliveries are all still in flight, the receiver first waits up to 50ms
// for one of them to be settled.
//
// # Limits
//
// Capabilities: MaxEventBytes is Pub/Sub's 10 MB less 4 KiB for what
// EncodedSize does not count; Publish checks each message's exact size
// (data, attributes, ordering key) and fails an oversized one with a
// *crossbus.SizeError. A partitionkey over 1024 bytes is refused with a
// validation error. MaxBatchCount 1000, MaxBatchBytes 10 MB (one publish
// request). DefaultAckDeadline is the subscription's (10s by default).
//
// # Provisioning and filter push-down
//
// CreateTopic and CreateSubscription (off the hot path, for development
// and tests; Options.AutoCreate calls them on demand) create entities with
// ordering, a dead-letter policy with its own subscription, a retry policy
// and a subscription filter. A filter is a Pub/Sub filter expression over
// the ce- attributes, such as
// `attributes.ce-type = "com.example.order.placed"`; SubscriptionFilter
// translates a route's event pattern into one. It must select a superset
// of what the route's own filter selects.
//
// When AutoCreate creates a missing subscription for a route, the route's
// event pattern becomes the subscription's filter: conditions on type,
// source, subject, id, dataschema, datacontenttype and extensions (exact
// values, prefixes, trailing-'*' wildcards, exists, anything-but values or
// prefixes, "$or") are pushed down, so Pub/Sub acknowledges the events the
// route would skip without delivering them. Conditions Pub/Sub filters
// cannot express (anything on data, suffixes, numeric ranges,
// equals-ignore-case, time) are left out, making the filter a superset.
// Receivers compare the subscription's filter with the translation of
// their route's pattern: when they are equal and the translation is exact
// (driver.NativeFiltering), the route does not match deliveries again;
// otherwise it does. A subscription's filter cannot be changed once it is
// created: a route whose pattern changed needs a new subscription.
//
// # Testing
//
// The tests run the crossbus conformance suite against pstest, the
// in-process fake, twice: with plain subscriptions and with dead-letter
// policies. pstest differs from Pub/Sub: push subscriptions do not
// deliver, retry policies and exactly-once delivery are stored but not
// enforced, delivery attempts are counted per message across all
// subscriptions of a topic (exact only with one subscription), an empty
// pull waits 500ms without noticing new messages, streaming pull delivers
// about one message per 10ms, filters accept attribute names unquoted
// (attributes.ce-type) but not quoted, and a topic used by a dead-letter
// policy cannot be deleted. The conformance harness corrects the delivery
// attempts of fanned-out messages to Pub/Sub's per-subscription count with
// a client interceptor. Tests against Google Cloud run with
// CROSSBUS_GCP_LIVE=1, CROSSBUS_GCP_PROJECT and credentials.
package gcp
