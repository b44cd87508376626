// Package postgres keeps crossbus's durable state in PostgreSQL, through
// pgx (pure Go, a connection pool), for services that run on several
// machines: the idempotency store (crossbus.IdempotencyStore, and the
// crossbus.InboxStore of the transactional inbox), the event store with
// snapshots, checkpoints and the transactional outbox (sourcing.Store and
// friends), chain instance state (chain.Store), leader leases with fencing
// tokens (leader.Store) and the last applied sequence per key
// (sequence.Store). It is the peer of stores/sqlite, with the same
// surface: Open, the stores, WriteTx, TxFrom, Changed, Close.
//
//	db, err := postgres.Open(ctx, "postgres://app@db.internal/orders", postgres.Options{})
//	defer db.Close()
//	route := crossbus.WithIdempotency(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true})
//	events := db.Events()   // sourcing.Store, SnapshotStore, CheckpointStore, Outbox, Notifier
//	chains := db.Chains()   // chain.Store
//	leases := db.Leases()   // leader.Store
//
// # Tables
//
// The tables live in one schema (Options.Schema, default "crossbus"), which
// Open creates and migrates; stores in distinct schemas of a database are
// independent. Times are timestamptz; events and outbox messages are stored
// in the compact binary encoding of the repository's internal/eventcodec.
//
//	schema_migrations (version PK, name, applied)    migrations applied
//	idempotency  (key bytea PK, token, completed, expires)
//	streams      (id PK, name UNIQUE, version)
//	head         (id = 1, position)                  the last position handed out
//	events       (position PK, stream_id, version, event_id, recorded, body)
//	             UNIQUE (stream_id, version), UNIQUE (stream_id, event_id)
//	snapshots    (stream PK, version, schema, state, taken)
//	checkpoints  (name PK, position, updated)
//	outbox       (id PK, topic, stream, version, body, enqueued, sent)
//	chain_instances (id PK, chain, status, revision, updated, body json)
//	chain_steps  (instance, step, kind PK, token, done, expires, output)
//	leases       (name PK, holder, token, expires)
//	sequences    (key PK, last)
//
// # Migrations
//
// The schema is created and upgraded on Open by migrations embedded in the
// package, all in one transaction under a transaction-scoped advisory lock
// keyed by the schema name: replicas that start at once queue on the lock,
// and each after the first finds the work done. PostgreSQL's DDL is
// transactional, so a failed migration leaves nothing half-applied. Open
// refuses a schema that is newer than the package, or that records its
// migrations but misses a table, rather than guessing. Options.NoMigrate is
// for a role that may not change the schema: Open then only checks it.
//
// # Global order: why tailing readers never skip an event
//
// A reader that follows the log (ReadAll from the position after the last
// one it saw) must never have a lower position become visible after a
// higher one, or it would skip it. Sequences do not give that: a
// transaction that drew position 10 may commit after one that drew 11.
// Here an append takes its positions from the single row of head, by an
// UPDATE that keeps the row locked until the transaction ends. The next
// append's UPDATE waits for that lock, which PostgreSQL releases only after
// the committed transaction is visible to new snapshots. So positions are
// handed out one committing transaction at a time: they are gap-free (a
// rolled-back append rolls the counter back) and rise in commit order, and
// any snapshot that sees position p sees every position below p. The lock
// is taken last in the append — after the stream's row is locked and its
// version and event ids are checked, in a pipelined round trip — and held
// only for the insert statement and the commit, so appends to different
// streams run in parallel up to that point and queue only for it. The cost
// is that appends commit one at a time (a few thousand single-event
// appends a second on a local server; batches amortise it, see
// BENCHMARKS.md), and that a transaction that calls AppendTx holds the lock
// until it ends: keep such transactions short, append last. A transaction
// that appends to two streams in different orders than another may be
// chosen as a deadlock victim by the server and fail; retry it.
//
// The alternative — reading only below the lowest position still in
// flight, with positions from a sequence — needs every reader to know the
// in-flight set (pg_snapshot_xmin and a transaction id per row) and still
// leaves gaps; the single counter keeps the sourcing package's contract
// (gap-free, commit order) with ordinary SQL.
//
// # Transactional inbox
//
// The idempotency store is also a crossbus.InboxStore. A route with
// IdempotencyOptions.Transactional runs its handler inside a transaction of
// the DB and marks the event handled in that transaction, so the handler's
// own writes and the idempotency record commit together:
//
//	router.Handle("payments", "ledger", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
//		tx, _ := postgres.TxFrom(ctx) // the inbox transaction
//		_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = $1`, e.Subject())
//		return err
//	}), crossbus.WithIdempotency(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true}))
//
// The DB's methods that write (WriteTx, EventStore.Append, SaveCheckpoint,
// ...) join that transaction when given the handler's context (WriteTx in
// a savepoint), so a handler can also append events and enqueue outbox
// messages that commit with the event. The claim's row stays locked for
// the transaction: a concurrent Begin of the same key waits for it, and
// after the commit finds the key completed. Handlers of different keys run
// in parallel, one pooled connection each (Options.MaxConns bounds them).
//
// Crash guarantee, as for stores/sqlite: wherever the process dies, the
// event is either applied and marked completed, or neither.
//
// # Notifications
//
// Appends and Enqueue notify the channel crossbus_changed (payload: the
// schema) in their transaction, which PostgreSQL delivers at commit. Each
// DB listens on a connection of its own (reconnecting after failures), so
// Changed — and a sourcing.Relay waiting on it — wakes for writes of any
// process, not only its own. The relay still polls, for notifications lost
// while the listener reconnects.
//
// # Replicas and fencing
//
// LeaderStore elects one replica for work that must run once (see
// patterns/leader, sourcing.Relay's Leader option and
// chain.CoordinatorOptions.Leader). Writes given a context that carries
// the leader's lease (EventStore.MarkSent, ChainStore.Create and Save) are
// fenced: they commit only while the lease's term is current, checked and
// share-locked in the same transaction.
//
// # Failures
//
// Every error names the operation and wraps the driver's (pgconn.PgError,
// network errors): errors.As reaches them. A lost connection fails the
// statement in flight; the transaction it belonged to is rolled back by the
// server, so nothing is half-written, and the pool reconnects for later
// calls. Errors after Close match crossbus.ErrClosed.
package postgres
