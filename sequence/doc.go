// Package sequence keeps per-key order where the transport cannot: a
// producer stamps each partition key's events with a rising sequence number
// (the CloudEvents sequence extension), and a consumer uses it to detect
// gaps and duplicates and to restore order.
//
//   - Stamper stamps events before Publish ([Stamper.Stamp]); [Format],
//     [Parse] and [Of] read and write the zero-padded numbers (lexical order
//     is numeric order, as the extension's rules compare them).
//   - [Resequence] is route middleware that hands a key's events to the
//     handler in sequence order, whatever order they arrive in, waiting a
//     bounded time for missing numbers and then releasing later events with
//     a gap notice ([GapFrom]).
//   - [LatestWins] is route middleware that skips events older than the last
//     one applied for their key (last-writer-wins state such as prices).
//
// Both middlewares keep the last applied sequence of each key in a [Store]:
// [MemoryStore] in one process, or a shared store (stores/postgres,
// stores/redis) across replicas and restarts. This is the documented recipe
// for per-key order on providers whose native ordering does not survive a
// consumer failing over (see the providers' Ordering capability).
package sequence
