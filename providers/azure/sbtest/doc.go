// Package sbtest is an in-process broker that speaks enough AMQP 1.0 and
// Azure Service Bus protocol for the official Go SDK (azservicebus) to run
// against it unchanged: start a Server, hand its ConnectionString (which sets
// UseDevelopmentEmulator=true, so the SDK uses plain AMQP without TLS) to
// azservicebus.NewClientFromConnectionString, and create the entities your
// code expects with CreateQueue, CreateTopic and CreateSubscription.
//
//	srv, err := sbtest.NewServer(sbtest.Options{})
//	defer srv.Close()
//	_ = srv.CreateQueue("orders", sbtest.EntityOptions{LockDuration: 5 * time.Second})
//	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
//
// # What it emulates
//
//   - Transport: AMQP 1.0 framing, SASL ANONYMOUS (and PLAIN, unchecked),
//     open/begin/attach/flow/transfer/disposition/detach/end/close,
//     multi-frame transfers in both directions (split to the client's
//     max-frame-size), link credit, drain and echo, heartbeats at half the
//     client's idle timeout.
//   - Claims: $cbs put-token, answered on the client's reply link with the
//     request's message-id as correlation-id and an int status-code. SAS
//     tokens are verified against the key in ConnectionString (401 when the
//     signature, key name or expiry is wrong); JWTs are accepted unverified.
//   - Entities: queues, topics with subscriptions, entity paths "q",
//     "t/Subscriptions/s" and their "/$DeadLetterQueue" sub-queues; names
//     are case-insensitive; sending to or receiving from a missing entity
//     fails the attach with amqp:not-found. Deleting an entity (DeleteQueue, DeleteTopic, DeleteSubscription)
//     detaches the receive links attached to it with amqp:not-found, and
//     sends and settlements on it fail with amqp:not-found from then on.
//   - Subscription rules: a topic message is copied into each subscription
//     that has a rule whose SQL filter selects it (EntityOptions.Filter for
//     the rule a subscription is created with, AddRule, DeleteRule, Rules).
//     Filters are Service Bus's SQL filter language (see SQLFilter):
//     comparisons, [NOT] IN, [NOT] LIKE with ESCAPE, IS [NOT] NULL, EXISTS,
//     AND, OR, NOT with three-valued logic for missing user properties,
//     arithmetic, user and sys properties, case-insensitive property names.
//   - Sending: single messages and batches (message-format 0x80013700, one
//     data section per encoded message; a batch is accepted or rejected as a
//     whole), max-message-size on the link (default 256 KiB) with
//     amqp:link:message-size-exceeded for larger transfers, scheduled
//     messages (x-opt-scheduled-enqueue-time), duplicate detection by
//     MessageID within EntityOptions.DuplicateDetectionWindow.
//   - Receiving: peek-lock with a 16-byte lock token (delivery tag in .NET
//     GUID byte order, and the x-opt-lock-token delivery annotation),
//     x-opt-sequence-number, x-opt-enqueued-time and x-opt-locked-until
//     annotations, header delivery-count counting failed deliveries;
//     receive-and-delete (sender-settled links). Messages are delivered in
//     sequence-number order and round-robin across the links with credit.
//   - Settlement on the link: accepted = complete, released = available again
//     without counting a delivery, modified = abandon (delivery count + 1,
//     annotations merged into the application properties) or, with
//     undeliverable-here, defer; rejected = dead-letter, with
//     DeadLetterReason, DeadLetterErrorDescription and any other info entries
//     written to the message's application properties. The broker answers
//     every unsettled disposition with a settled one; settling a message
//     whose lock expired answers rejected with com.microsoft:message-lock-lost.
//   - Locks: LockDuration per entity; an expired lock makes the message
//     available again and counts a delivery; reaching MaxDeliveryCount moves
//     it to the dead-letter queue with reason MaxDeliveryCountExceeded.
//   - $management: renew-lock, schedule-message, cancel-scheduled-message,
//     peek-message, receive-by-sequence-number (deferred messages),
//     update-disposition (completed, abandoned, suspended, defered),
//     renew-session-lock, get-session-state, set-session-state,
//     get-message-sessions.
//   - Sessions: entities with RequiresSession group messages by SessionID
//     (AMQP group-id). A receive link with the com.microsoft:session-filter
//     either names a session or takes the next one with messages (oldest
//     message first), waiting up to nine tenths of the com.microsoft:timeout
//     link property (so the answer beats the client's own deadline; default
//     60s) and then failing the attach with com.microsoft:timeout.
//     The granted id is echoed in the filter, with
//     com.microsoft:locked-until-utc. A session is locked to one link until
//     the link detaches or the session lock (LockDuration, renewable)
//     expires; its unsettled messages then count a failed delivery and
//     return, in sequence order. Locked sessions receive in sequence order.
//   - Management: the ATOM (XML over HTTPS) API the SDK's admin.Client
//     speaks, for creating, reading and deleting queues, topics,
//     subscriptions (with their default rule) and rules, on a TLS listener
//     of its own; HTTPClient returns the client to hand to admin.Client.
//     Requests must carry a SAS token signed with the namespace key (or a
//     bearer token, accepted unverified).
//
// # Where it differs from Service Bus
//
//   - Nothing is durable. The management API creates, reads and deletes
//     entities but does not update them, and reports only their main
//     settings (no runtime counts; see Counts). Rule actions, correlation
//     filters, filter parameters and the newid() and property() functions
//     are not emulated; comparing values of unrelated types is unknown
//     rather than a filter evaluation error.
//   - Time to live is stored and returned but messages never expire;
//     auto-forwarding, transactions, partitioned entities, message
//     enrichment beyond the annotations above and the transfer dead-letter
//     queue are not emulated.
//   - Sequence numbers are per queue or topic (a subscription's copies keep
//     the topic's number); a dead-letter queue numbers its own messages.
//   - A topic message without a SessionID skips subscriptions that require
//     sessions (a queue that requires sessions refuses it with
//     amqp:not-allowed).
//   - Message locks outlive the link that received them: until they expire
//     the messages can still be settled through $management. Session locks
//     end with their link.
//   - Claims are checked when put, but links are not refused for want of
//     one, and an expired claim does not close anything.
//   - Peek returns available, locked and deferred messages, not scheduled
//     ones (they wait on the queue or topic until their time).
//   - Flow control: the broker ignores the client's session incoming window
//     (it trusts link credit) and does not limit reply links by credit.
//   - Sessions are always accepted in oldest-message order; Service Bus
//     does not promise an order.
package sbtest
