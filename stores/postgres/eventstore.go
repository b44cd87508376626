package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/eventcodec"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// EventStore is the event store of a DB: a sourcing.Store, SnapshotStore,
// CheckpointStore, Outbox and Notifier. Get it with DB.Events.
//
// Guarantees beyond the sourcing package's: an Append is one transaction,
// so its events, its outbox messages and (with AppendTx) the caller's own
// changes commit together. Global positions are gap-free and in commit
// order, with writers in any number of processes: see the package
// documentation for how, and what it costs.
type EventStore struct {
	db *DB
}

var (
	_ sourcing.Store           = (*EventStore)(nil)
	_ sourcing.SnapshotStore   = (*EventStore)(nil)
	_ sourcing.CheckpointStore = (*EventStore)(nil)
	_ sourcing.Outbox          = (*EventStore)(nil)
	_ sourcing.Notifier        = (*EventStore)(nil)
)

// AppendResult is sourcing.AppendResult.
type AppendResult = sourcing.AppendResult

// Record is sourcing.Record.
type Record = sourcing.Record

// Changed implements sourcing.Notifier.
func (s *EventStore) Changed() <-chan struct{} { return s.db.Changed() }

// Append implements sourcing.Store. On its own (outside an inbox
// handler's transaction) an append is two round trips to the server: the
// transaction's start, the stream's lock and the id check in one pipeline,
// then the write and the commit in another.
func (s *EventStore) Append(ctx context.Context, stream string, expected sourcing.Expected, events ...*crossbus.Event) (AppendResult, error) {
	enc, err := encodeAppend(stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	if tx := s.db.joined(ctx); tx != nil {
		var res AppendResult
		err = s.db.writeTx(ctx, fmt.Sprintf("append to %q", stream), func(tx pgx.Tx) error {
			var err error
			res, err = s.append(ctx, tx, false, stream, expected, events, enc)
			return err
		})
		return res, err
	}
	conn, err := s.db.pool.Acquire(ctx)
	if err != nil {
		return AppendResult{}, s.db.wrap(fmt.Sprintf("append to %q: connect", stream), err)
	}
	defer conn.Release() // a connection left inside a transaction is closed, not reused
	res, err := s.append(ctx, conn, true, stream, expected, events, enc)
	if err != nil {
		return AppendResult{}, err
	}
	if res.Appended > 0 {
		s.db.notify()
	}
	return res, nil
}

// AppendTx appends within tx, a transaction from DB.WriteTx (or TxFrom),
// so that the events (and their outbox messages) commit together with the
// caller's own changes. It has Append's semantics. A conflict leaves tx
// usable (the caller decides whether to roll back); a database error
// aborts it, as any failed statement does in PostgreSQL.
//
// From the append on, tx holds the lock that orders appends (see the
// package documentation) until it ends: every other append waits for it.
// Keep such transactions short, and append last.
func (s *EventStore) AppendTx(ctx context.Context, tx pgx.Tx, stream string, expected sourcing.Expected, events ...*crossbus.Event) (AppendResult, error) {
	enc, err := encodeAppend(stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	return s.append(ctx, tx, false, stream, expected, events, enc)
}

func encodeAppend(stream string, events []*crossbus.Event) ([][]byte, error) {
	if err := sourcing.ValidateAppend(stream, events); err != nil {
		return nil, err
	}
	enc := make([][]byte, len(events))
	for i, e := range events {
		b, err := eventcodec.Append(make([]byte, 0, 96+len(e.DataEncoded)), e)
		if err != nil {
			return nil, err
		}
		enc[i] = b
	}
	return enc, nil
}

const (
	// Lock the stream's row (creating it at version 0 if needed) and read
	// its version: appends to one stream queue here.
	qLockStream = `INSERT INTO §streams AS s (name, version) VALUES ($1, 0)
		ON CONFLICT (name) DO UPDATE SET version = s.version
		RETURNING id, version`
	qStreamByName = `SELECT id, version FROM §streams WHERE name = $1`
	// The write: take positions from head (its row stays locked until the
	// transaction ends), insert the events and their outbox messages (in
	// event order, so outbox ids rise with versions), set the stream's
	// version, and notify listeners at commit.
	qWrite = `WITH h AS (
			UPDATE §head SET position = position + $3 WHERE id = 1 RETURNING position - $3 AS base),
		ev AS (
			INSERT INTO §events (position, stream_id, version, event_id, recorded, body)
			SELECT h.base + u.n, $1, $2 + u.n, u.id, $4, u.body
			FROM h, unnest($5::text[], $6::bytea[]) WITH ORDINALITY AS u(id, body, n)),
		ob AS (
			INSERT INTO §outbox (topic, stream, version, body, enqueued)
			SELECT u.topic, $7, $2 + u.n, u.body, $4
			FROM unnest($8::text[], $6::bytea[]) WITH ORDINALITY AS u(topic, body, n)
			WHERE u.topic <> '' ORDER BY u.n),
		st AS (
			UPDATE §streams SET version = $2 + $3 WHERE id = $1)
		SELECT h.base FROM h, (SELECT pg_notify($9, $10)) AS n`
)

// streamRow is a stream as an append finds it.
type streamRow struct {
	id      int64
	version uint64
}

// batcher is a transaction or a connection: what append sends its
// statements through.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// append appends through q. With own, q is a connection outside any
// transaction: append begins the transaction in its first pipeline and
// commits it in its last (or rolls it back when it writes nothing).
func (s *EventStore) append(ctx context.Context, q batcher, own bool, stream string, expected sourcing.Expected, events []*crossbus.Event, enc [][]byte) (res AppendResult, err error) {
	var begun bool
	defer func() {
		if begun && (err != nil || res.Appended == 0) {
			_, _ = q.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if len(events) == 0 {
		var st streamRow
		err := q.QueryRow(ctx, s.db.q(qStreamByName), stream).Scan(&st.id, &st.version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return AppendResult{}, s.db.wrap(fmt.Sprintf("append to %q: read stream", stream), err)
		}
		if !expected.Allows(st.version) {
			return AppendResult{}, &sourcing.ConflictError{Stream: stream, Expected: expected, Actual: st.version}
		}
		return AppendResult{Version: st.version}, nil
	}
	// An id repeated within the call is recorded once.
	fresh := make([]int, 0, len(events))
	ids := make([]string, 0, len(events))
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		if !seen[e.ID()] {
			seen[e.ID()] = true
			fresh = append(fresh, i)
			ids = append(ids, e.ID())
		}
	}

	// One round trip: lock the stream, then look up the ids it holds.
	var b pgx.Batch
	if own {
		b.Queue("BEGIN")
		begun = true
	}
	var st streamRow
	b.Queue(s.db.q(qLockStream), stream).QueryRow(func(row pgx.Row) error {
		return row.Scan(&st.id, &st.version)
	})
	var known map[string]bool
	b.Queue(s.db.q(qKnownIDsByName), stream, ids).Query(func(rows pgx.Rows) error {
		var id string
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			if known == nil {
				known = map[string]bool{}
			}
			known[id] = true
			return nil
		})
		return err
	})
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return AppendResult{}, s.db.wrap(fmt.Sprintf("append to %q: lock stream", stream), err)
	}
	if len(known) > 0 {
		kept := fresh[:0:0]
		for _, i := range fresh {
			if !known[events[i].ID()] {
				kept = append(kept, i)
			}
		}
		fresh = kept
	}
	if len(fresh) == 0 {
		// Every event is recorded: a retried append succeeds whatever it
		// expected.
		return AppendResult{Version: st.version, Duplicates: len(events)}, nil
	}
	if !expected.Allows(st.version) {
		return AppendResult{}, &sourcing.ConflictError{Stream: stream, Expected: expected, Actual: st.version}
	}
	res, err = s.write(ctx, q, own, stream, st, events, enc, fresh)
	if err != nil {
		return AppendResult{}, err
	}
	res.Duplicates = len(events) - res.Appended
	return res, nil
}

// qKnownIDsByName returns which of the ids the stream holds. It is queued
// after qLockStream, so its snapshot has every append to the stream that
// committed before the lock was taken, and it goes by name, since the
// stream's id is not known yet when it is queued. It probes the unique
// index on (stream_id, event_id) once per id, whatever the stream's length.
const qKnownIDsByName = `SELECT u.id FROM unnest($2::text[]) AS u(id)
	WHERE EXISTS (SELECT 1 FROM §events e WHERE e.event_id = u.id
		AND e.stream_id = (SELECT id FROM §streams WHERE name = $1))`

// write records events[i] for i in fresh at the end of the stream, with
// their outbox messages.
func (s *EventStore) write(ctx context.Context, q batcher, commit bool, stream string, st streamRow, events []*crossbus.Event, enc [][]byte, fresh []int) (AppendResult, error) {
	n := len(fresh)
	ids := make([]string, n)
	bodies := make([][]byte, n)
	topics := make([]string, n)
	route := s.db.opts.Outbox
	for k, i := range fresh {
		ids[k] = events[i].ID()
		bodies[k] = enc[i]
		if route != nil {
			topics[k] = route(stream, events[i])
		}
	}
	var base int64
	var b pgx.Batch
	b.Queue(s.db.q(qWrite), st.id, int64(st.version), int64(n), time.Now(), ids, bodies, stream, topics,
		notifyChannel, s.db.opts.Schema).QueryRow(func(row pgx.Row) error { return row.Scan(&base) })
	if commit {
		b.Queue("COMMIT")
	}
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return AppendResult{}, s.db.wrap(fmt.Sprintf("append to %q: write", stream), err)
	}
	return AppendResult{
		Appended:      n,
		Version:       st.version + uint64(n),
		FirstPosition: uint64(base) + 1,
		LastPosition:  uint64(base) + uint64(n),
	}, nil
}

// StreamVersion implements sourcing.Store.
func (s *EventStore) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	var v int64
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT version FROM §streams WHERE name = $1`), stream).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.db.wrap(fmt.Sprintf("version of %q", stream), err)
	}
	return uint64(v), nil
}

// Head implements sourcing.Store. It reads the last committed position,
// without waiting for appends in flight.
func (s *EventStore) Head(ctx context.Context) (uint64, error) {
	var p int64
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT COALESCE(MAX(position), 0) FROM §events`)).Scan(&p)
	if err != nil {
		return 0, s.db.wrap("head", err)
	}
	return uint64(p), nil
}
