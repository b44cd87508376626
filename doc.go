// Package crossbus gives Go services one event-bus API over AWS, Google Cloud,
// Azure, NATS, Kafka and an in-process default. Events are CloudEvents
// ([Event]); a provider maps them to its native service; this package, the
// portable layer, gives every provider the same delivery behaviour:
// validation, batching, retries with backoff, dead-lettering, idempotent
// consumers, ordering keys, tracing and bounded shutdown.
//
// Open a bus by URL (providers register their scheme when imported), add
// routes to a [Router], run it, and publish with [Bus.Publish]:
//
//	bus, err := crossbus.Open(ctx, "mem://")
//	r, err := crossbus.NewRouter(bus)
//	err = r.Handle("orders", "billing", crossbus.HandlerFunc(bill))
//	go r.Run(ctx)
//	err = bus.Publish(ctx, "orders", &event)
//
// # Delivery contract
//
// Every provider keeps these rules; the conformance suite in
// providers/providertest proves each of them as a named test.
//
//   - CloudEvents 1.0. [Bus.Publish] refuses an event missing id, source,
//     type or specversion, with an extension name outside a–z and 0–9, an
//     extension value outside the CloudEvents type system (Boolean, Integer
//     within 32 bits, String, Binary, URI, URI-reference, Timestamp), or over
//     the provider's size limit, with an error naming the field, or the size
//     and the limit ([ValidationError], [SizeError]); nothing of it is sent.
//   - Portable names. Topic and subscription names are 3–50 ASCII letters,
//     digits and '-', starting with a letter and ending with a letter or
//     digit — the names every supported service accepts. Others are refused
//     with [ErrInvalidName] before a provider sees them ([ValidateName]).
//   - Batches are atomic per event: a [PublishError] lists exactly the
//     events that failed, by index, so a caller retries just those.
//   - Copies. After Publish returns, the caller may reuse or change its
//     events. Every delivery is an independent copy: a handler that changes
//     its event changes nothing another subscription or a redelivery sees.
//     (A retry that runs in place — ordered routes, providers that cannot
//     delay a redelivery — is the same delivery and sees the same event.)
//   - At-least-once. A handler returning nil acks. An error is retried with
//     the route's [RetryPolicy] (exponential backoff with jitter, max
//     attempts, max delay); [Permanent] skips retries; a panic is recovered
//     and counts as an error ([ErrPanic]). After the last attempt the event
//     is dead-lettered: natively where the provider has a dead-letter queue,
//     else published to the route's [WithDeadLetterTopic], with the reason,
//     attempts, origin topic, subscription and time as extensions
//     ([DeadLetterInfoOf]). If dead-lettering fails the event is nacked:
//     nothing is dropped.
//   - Undecodable messages (not CloudEvents, or malformed ones) never reach
//     a handler: the portable layer dead-letters them with the decode error
//     as the reason and the raw payload in a [TypeUndecodable] event.
//   - Ordering. With [WithOrdering], events of one partition key are handled
//     one at a time in publish order, different keys in parallel; a failed
//     event is retried in place so no later event of its key overtakes it.
//   - Concurrency. A received event goes to any idle handler:
//     [WithConcurrency](n) runs up to n handlers at once and one slow
//     handler holds back no other event. Events received but not started
//     wait at most about a third of the ack deadline; then they go back to
//     the provider, so another consumer can take them.
//   - Idempotency. [WithIdempotency] keys on subscription + source + id: a
//     completed duplicate is acked without running the handler, a concurrent
//     duplicate never runs alongside the first, a failed handler releases
//     the key. The claim's lease is short and renewed while the handler
//     runs, so a crashed consumer's claim frees within seconds. With
//     IdempotencyOptions.Transactional and an [InboxStore], the handler's
//     writes and the idempotency record commit in one transaction.
//   - Receive failures. An error the provider reports as permanent (a
//     deleted subscription, refused credentials, invalid configuration) stops
//     the subscription and surfaces: [Subscription.Err], [Router.Run]'s
//     error, [Router.Err]. Transient errors are retried with their own
//     backoff (100ms doubling to 30s), counted and logged.
//   - Bounded shutdown. [Subscription.Close], [Bus.Close] and [Router.Run]
//     stop receiving, return unstarted events to the provider, and wait for
//     running handlers until the drain timeout ([WithDrainTimeout], default
//     30s) or the context's deadline, whichever comes first. Handlers still
//     running then are abandoned: their contexts are cancelled, their
//     deliveries are left unsettled for the provider to redeliver, and what
//     they return later is ignored; the error wraps [ErrHandlersAbandoned]
//     and an [AbandonedError] says how many on which route. A handler that
//     ignores its context keeps its goroutine until it returns, but never
//     holds up Close. A Router returns when its bus closes ([ErrClosed]).
//   - Push platforms. [Bus.NewEndpoint] and [Router.Endpoint] run the same
//     pipeline for events a platform pushes (Pub/Sub push, Eventarc, Event
//     Grid, Lambda, Functions); the adapter maps ack, nack and dead-letter to
//     the platform's answer.
//
// # Pipeline order
//
// Whatever the order of registration: retry and dead-lettering outermost,
// then panic recovery, then the filter and idempotency, then the route's
// timeout ([WithTimeout]), then the router's middleware ([Router.Use]),
// then the route's own ([WithMiddleware]), then the handler.
//
// # Errors
//
// Errors are values to inspect with errors.Is and errors.As: the sentinels
// listed in errors.go, and the typed errors [PublishError], [EventError],
// [ValidationError], [SizeError], [DataError] and [AbandonedError]. Every
// message names the library once ("crossbus: ...").
//
// # Observability
//
// The portable layer traces (a producer span per Publish, a consumer span per
// delivery, W3C trace context carried in the traceparent extension), counts
// (crossbus.events.*, crossbus.handler.duration, crossbus.receive.failures)
// and logs (through [WithLogger]) for every provider. Nothing is recorded
// until the application installs an OpenTelemetry SDK.
package crossbus
