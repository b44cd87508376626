// Package servicebus is the crossbus provider for Azure Service Bus, built on
// the official SDK (azservicebus) over AMQP 1.0. Import it for its side
// effect to make "azuresb://" URLs work:
//
//	import _ "github.com/crossbus/crossbus/providers/azure/servicebus"
//
//	bus, err := crossbus.Open(ctx, "azuresb://NAME.servicebus.windows.net?queue=orders")
//
// # Connecting
//
// An azuresb://NAMESPACE URL uses the connection string in
// AZURE_SERVICEBUS_CONNECTION_STRING when it is set (its endpoint must match
// the URL's host, or the host may be left out), and otherwise azidentity's
// default credential chain for NAMESPACE; "credential=default" forces the
// latter. A connection string with ";UseDevelopmentEmulator=true" makes the
// SDK speak plain AMQP to a local emulator such as
// github.com/crossbus/crossbus/providers/azure/sbtest. New takes the same
// choices as Options (ConnectionString, Namespace with Credential, or an
// existing *azservicebus.Client). URL parameters: queue (repeatable or
// comma-separated), credential, lockduration, maxmessagebytes,
// maxredeliverydelay, sessions, sessionidle, propertyprefix, autocreate
// (see Options).
//
// # Entities
//
// Publish's topic names the entity to send to: a topic or a queue alike.
// Subscribe(topic, name) receives from the subscription name of topic, or,
// when topic is listed in Options.Queues (URL: queue=NAME), from that queue:
// the name then only labels the route, and every consumer of the queue
// competes for its messages. Entities are not created by the provider
// unless Options.AutoCreate (URL: autocreate=true) is set; a missing one
// fails Publish with driver.ErrTopicNotFound and Subscribe with
// driver.ErrSubscriptionNotFound (ErrTopicNotFound for a queue).
//
// # Filter push-down
//
// SQLFilter translates a route's event pattern into a Service Bus SQL rule
// over the cloudEvents_ application properties: exact values and IN,
// prefixes, suffixes and wildcards as LIKE, exists as EXISTS, anything-but
// as NOT IN and NOT LIKE, and "$or". Conditions on data, on numbers, and
// equals-ignore-case stay local: the rule is then a superset. With
// AutoCreate, a subscription the provider creates for a route gets the
// translation as its default rule, so Service Bus never delivers the
// events the route would skip; the receiver reads the subscription's rules
// and, when the only one is the route's exact translation, reports it
// (driver.NativeFiltering) and the route does not match deliveries again.
// Without AutoCreate, give subscriptions their rule in your infrastructure
// code (SQLFilter prints it); routes always match locally then.
//
// # On the wire
//
// Events travel in the CloudEvents AMQP binding's binary mode (see
// MessageFromEvent and EventFromMessage): data in the body, datacontenttype
// as ContentType, every other attribute an application property named
// "cloudEvents_<attribute>" (Options.PropertyPrefix selects "cloudEvents:"
// instead, the form the CloudEvents Go SDK's AMQP binding reads; both are read,
// and content type "application/cloudevents+json" is read as structured
// mode). MessageID is the event id, so Service Bus duplicate detection drops
// a re-published event; SessionID is the partitionkey extension; Subject
// the event's subject. Messages sent by other Service Bus clients become
// events by the rule EventFromMessage documents.
//
// # Delivery
//
//   - Peek-lock. Attempt is the message's DeliveryCount. Ack completes,
//     Nack abandons, DeadLetter moves the message to the dead-letter
//     sub-queue with DeadLetterReason and DeadLetterErrorDescription and
//     crossbus's dead-letter extensions as application properties;
//     SubscribeDeadLetters reads them back.
//   - Lease extension renews the message lock (RenewMessageLock) when it
//     would end within the ack deadline; DefaultAckDeadline is
//     Options.LockDuration.
//   - Delayed redelivery: Service Bus cannot delay an abandon, and
//     scheduling a copy would reach every subscription of a topic (and be
//     dropped by duplicate detection), so Nack with a delay keeps the
//     message locked, renewing the lock, and abandons it when the delay has
//     passed. If the consumer stops first, the lock expires and Service Bus
//     redelivers the message then: at-least-once, never lost, possibly
//     sooner than asked. Delays above Options.MaxRedeliveryDelay are
//     retried in place by the portable layer.
//   - Ordering uses sessions: an ordered route needs a session-enabled
//     subscription (or queue); each of up to MaxConcurrentSessions workers
//     locks one session, receives its messages in order, and moves on to the
//     next session after SessionIdleTimeout without messages and once
//     everything it handed out is settled. Workers ask a session for one
//     message at a time: the SDK releases messages that arrive after a
//     receive call returned, and with more credit outstanding a released
//     message could be redelivered behind a later one. A subscription that
//     requires sessions is always consumed through sessions, ordered route
//     or not.
//     Publish an event without a partitionkey to a session-enabled queue and
//     Service Bus refuses it.
//   - Scheduled publish: Provider.Schedule (ScheduledEnqueueTime) and
//     CancelScheduled.
//   - Batches: Publish fills SDK message batches up to the link's size
//     limit and sends each; a batch is atomic, so a failed batch fails
//     exactly its events in the *crossbus.PublishError.
//   - Undecodable messages: a message without any CloudEvents claim becomes
//     an event by the rule of EventFromMessage, so only a message that
//     claims to be a CloudEvent (a structured content type, or
//     cloudEvents_/cloudEvents: application properties) and is not a valid
//     one is undecodable. Receivers (session receivers too) hand it to the
//     portable layer as a driver.Undecodable delivery whose event is the
//     placeholder of UndecodableEvent; the portable layer dead-letters it to
//     the dead-letter sub-queue with the reason "undecodable message: ..."
//     and no handler runs. SubscribeDeadLetters reads such a dead letter
//     back as that placeholder, with the dead-letter extensions.
//   - Receive errors: amqp:not-found (the subscription or queue was
//     deleted) stops the subscription with driver.ErrSubscriptionNotFound
//     (ErrTopicNotFound for a queue), amqp:unauthorized-access with
//     driver.ErrUnauthorized, and a disabled entity
//     (com.microsoft:entity-disabled) with a driver.Permanent error;
//     Subscription.Err reports it. Lost connections, timeouts and busy
//     servers are retried.
//
// Entity names given to the Bus are portable names (crossbus.ValidateName);
// Service Bus compares names without regard to case.
package servicebus
