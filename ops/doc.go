// Package ops is crossbus for platform teams: the operations a service's
// owners run on its event bus, the same on every provider.
//
//   - Dead letters ([DeadLetters]): list them (paged), group them by cause,
//     show one, redrive one, a group or all of them to their origin topic
//     (or another) at a rate limit, and purge them. It reads a
//     subscription's native dead-letter queue (crossbus.Bus.DeadLetters) or
//     a subscription of a route's dead-letter topic.
//   - Archive and replay ([Archive], [Replay]): a bus option keeps every
//     event published to chosen topics in a store (stores/sqlite,
//     stores/postgres); a replay re-publishes a time range, optionally
//     filtered by an event pattern, to a topic or to one subscription, at a
//     rate limit, and resumes where it stopped after a crash.
//   - An admin HTTP handler ([NewHandler]) a service mounts: the topology
//     of its router, live per-route counters, dead-letter operations,
//     archive and replay as a JSON API, and a web console over them.
//
// The crossbus command (cmd/crossbus) runs the same operations against a
// bus URL or a service's admin endpoint.
//
// # Extensions
//
// Operations mark the events they re-publish, so handlers can tell:
//
//   - redriven (Integer): how many times the event was redriven from a
//     dead-letter queue. The dead-letter extensions (deadletterreason, ...)
//     are removed; the event keeps its id, source and data, so idempotent
//     consumers stay correct.
//   - firstdeadletter (Timestamp): when the event was first dead-lettered;
//     kept across redrives.
//   - replayed (String): the id of the replay that re-published the event.
//   - targetsubscription (String): the only subscription that handles the
//     event; the portable layer acks it unhandled on every other
//     subscription of the topic. A redrive to the origin topic sets it to
//     the subscription that gave up on the event (unless
//     RedriveOptions.AllSubscriptions); a replay to one subscription sets it.
package ops
