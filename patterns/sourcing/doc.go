// Package sourcing is event sourcing on crossbus: an append-only event store
// with optimistic concurrency, stream and global reads as iterators, catch-up
// projections with durable checkpoints, snapshots, a generic aggregate helper
// and a transactional outbox that relays appended events to a bus.
//
// Events are CloudEvents (*crossbus.Event), so what a store records is what
// the bus carries.
//
// # Guarantees every Store gives (proven by stores/storetest.TestEventStore)
//
//   - Versions: the n-th event of a stream has Version n (1-based, no gaps).
//     Of concurrent appends to one stream with an exact expected version,
//     exactly one wins each version; the others fail with a *ConflictError
//     that carries the stream's actual version.
//   - Global order: every recorded event has a Position (1-based). Positions
//     are gap-free and increase in commit order: once a reader has seen
//     position p, no event with a position below p is ever committed later.
//     A catch-up reader that resumes after its last position therefore never
//     misses an event.
//   - Atomicity: the events of one Append are recorded together or not at
//     all, at consecutive positions.
//   - Deduplication: an event whose id is already recorded in the stream is
//     not recorded again. An Append whose events are all duplicates succeeds
//     without writing, whatever version it expected, so retrying an Append
//     whose outcome was lost is safe.
//   - Outbox: stores configured with an OutboxRoute enqueue the appended
//     events for relay in the same transaction as the append; Relay
//     publishes them at least once, in order per stream.
//
// The memory store (NewMemoryStore) keeps everything in the process; the
// sqlite store (stores/sqlite) keeps it in one database file.
package sourcing
