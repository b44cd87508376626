package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// EventStore is the event store of a DB: a sourcing.Store, SnapshotStore,
// CheckpointStore, Outbox and Notifier. Get it with DB.Events.
//
// Guarantees beyond the sourcing package's: an Append is one write
// transaction, so its events, its outbox messages and (with AppendTx) the
// caller's own changes commit together. Positions are assigned from the
// current maximum inside that transaction; transactions are serialised by
// SQLite's write lock, so positions are gap-free and in commit order even
// with writers in several processes.
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

// readPage is how many rows one read query fetches; a read holds no
// transaction open while its caller handles a page.
const readPage = 1024

// Changed implements sourcing.Notifier.
func (s *EventStore) Changed() <-chan struct{} { return s.db.Changed() }

// Append implements sourcing.Store.
func (s *EventStore) Append(ctx context.Context, stream string, expected sourcing.Expected, events ...*crossbus.Event) (AppendResult, error) {
	enc, err := encodeAppend(stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	var res AppendResult
	err = s.db.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.append(ctx, tx, stream, expected, events, enc)
		return err
	})
	if err != nil {
		return AppendResult{}, err
	}
	if res.Appended > 0 && s.db.joined(ctx) == nil {
		s.db.notify()
	}
	return res, nil
}

// AppendResult is sourcing.AppendResult.
type AppendResult = sourcing.AppendResult

// AppendTx appends within tx, a transaction from DB.WriteTx, so that the
// events (and their outbox messages) commit together with the caller's own
// changes. It has Append's semantics; a conflict leaves tx usable (the
// caller decides whether to roll back).
func (s *EventStore) AppendTx(ctx context.Context, tx *sql.Tx, stream string, expected sourcing.Expected, events ...*crossbus.Event) (AppendResult, error) {
	enc, err := encodeAppend(stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	return s.append(ctx, tx, stream, expected, events, enc)
}

func encodeAppend(stream string, events []*crossbus.Event) ([][]byte, error) {
	if err := sourcing.ValidateAppend(stream, events); err != nil {
		return nil, err
	}
	enc := make([][]byte, len(events))
	for i, e := range events {
		b, err := encodeEvent(make([]byte, 0, 96+len(e.DataEncoded)), e)
		if err != nil {
			return nil, err
		}
		enc[i] = b
	}
	return enc, nil
}

const (
	qStreamByName = `SELECT id, version FROM streams WHERE name = ?`
	qKnownIDs     = `SELECT event_id FROM events WHERE stream_id = ? AND event_id IN (SELECT value FROM json_each(?))`
	qNewStream    = `INSERT INTO streams (name, version) VALUES (?, 0)`
	qHead         = `SELECT COALESCE(MAX(position), 0) FROM events`
	qSetVersion   = `UPDATE streams SET version = ? WHERE id = ?`
	qEnqueue      = `INSERT INTO outbox (topic, stream, version, body, enqueued) VALUES (?, ?, ?, ?, ?)`
)

func (s *EventStore) append(ctx context.Context, tx *sql.Tx, stream string, expected sourcing.Expected, events []*crossbus.Event, enc [][]byte) (AppendResult, error) {
	var st streamRow
	err := s.db.txStmt(ctx, tx, qStreamByName).QueryRowContext(ctx, stream).Scan(&st.id, &st.version)
	if errors.Is(err, sql.ErrNoRows) {
		st = streamRow{name: stream}
	} else if err != nil {
		return AppendResult{}, fmt.Errorf("sqlite: append to %q: read stream: %w", stream, wrapErr(err))
	} else {
		st.name, st.exists = stream, true
	}

	// An id repeated within the call is recorded once.
	fresh := make([]int, 0, len(events))
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		if !seen[e.ID()] {
			seen[e.ID()] = true
			fresh = append(fresh, i)
		}
	}
	dups := len(events) - len(fresh)
	switch {
	case len(events) == 0 || !st.exists:
		// Nothing to deduplicate against.
	case !expected.Allows(st.version):
		// Refused, unless this is a retry of an append that was recorded.
		if fresh, err = s.withoutKnown(ctx, tx, st.id, events, fresh); err != nil {
			return AppendResult{}, fmt.Errorf("sqlite: append to %q: %w", stream, err)
		}
		if len(fresh) == 0 {
			return AppendResult{Version: st.version, Duplicates: len(events)}, nil
		}
	default:
		// Duplicates are rare: write, and look them up only if the unique
		// index on (stream, event id) refuses the write.
		if _, err := tx.ExecContext(ctx, `SAVEPOINT crossbus_append`); err != nil {
			return AppendResult{}, fmt.Errorf("sqlite: append to %q: %w", stream, wrapErr(err))
		}
		res, err := s.write(ctx, tx, st, events, enc, fresh)
		if isDuplicateID(err) {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO crossbus_append`); err != nil {
				return AppendResult{}, fmt.Errorf("sqlite: append to %q: %w", stream, wrapErr(err))
			}
			if fresh, err = s.withoutKnown(ctx, tx, st.id, events, fresh); err != nil {
				return AppendResult{}, fmt.Errorf("sqlite: append to %q: %w", stream, err)
			}
			res, err = AppendResult{Version: st.version}, nil
			if len(fresh) > 0 {
				res, err = s.write(ctx, tx, st, events, enc, fresh)
			}
		}
		if err != nil {
			return AppendResult{}, err
		}
		if _, err := tx.ExecContext(ctx, `RELEASE crossbus_append`); err != nil {
			return AppendResult{}, fmt.Errorf("sqlite: append to %q: %w", stream, wrapErr(err))
		}
		res.Duplicates = len(events) - res.Appended
		return res, nil
	}
	if !expected.Allows(st.version) {
		return AppendResult{}, &sourcing.ConflictError{Stream: stream, Expected: expected, Actual: st.version}
	}
	if len(fresh) == 0 {
		return AppendResult{Version: st.version, Duplicates: dups}, nil
	}
	res, err := s.write(ctx, tx, st, events, enc, fresh)
	res.Duplicates = len(events) - res.Appended
	return res, err
}

// streamRow is a stream as an append finds it.
type streamRow struct {
	id      int64
	name    string
	version uint64
	exists  bool
}

// write records events[i] for i in fresh at the end of the stream (creating
// it if needed), with their outbox messages.
func (s *EventStore) write(ctx context.Context, tx *sql.Tx, st streamRow, events []*crossbus.Event, enc [][]byte, fresh []int) (AppendResult, error) {
	if !st.exists {
		r, err := s.db.txStmt(ctx, tx, qNewStream).ExecContext(ctx, st.name)
		if err != nil {
			return AppendResult{}, fmt.Errorf("sqlite: append to %q: create stream: %w", st.name, wrapErr(err))
		}
		if st.id, err = r.LastInsertId(); err != nil {
			return AppendResult{}, err
		}
	}
	var head uint64
	if err := s.db.txStmt(ctx, tx, qHead).QueryRowContext(ctx).Scan(&head); err != nil {
		return AppendResult{}, fmt.Errorf("sqlite: append to %q: read head: %w", st.name, wrapErr(err))
	}
	route := s.db.opts.Outbox
	now := time.Now().UnixNano()
	rows := make([]any, 0, 5*len(fresh))
	var outbox []any
	for n, i := range fresh {
		pos, ver := head+uint64(n)+1, st.version+uint64(n)+1
		body := encodeRecord(st.name, ver, pos, now, enc[i])
		rows = append(rows, int64(pos), st.id, int64(ver), events[i].ID(), body)
		if route == nil {
			continue
		}
		if topic := route(st.name, events[i]); topic != "" {
			outbox = append(outbox, topic, st.name, int64(ver), enc[i], now)
		}
	}
	if err := s.db.insert(ctx, tx, insertEvents, rows); err != nil {
		if isDuplicateID(err) {
			return AppendResult{}, err // the caller deduplicates and writes again
		}
		return AppendResult{}, fmt.Errorf("sqlite: append to %q: insert events: %w", st.name, err)
	}
	if err := s.db.insert(ctx, tx, insertOutbox, outbox); err != nil {
		return AppendResult{}, fmt.Errorf("sqlite: append to %q: enqueue: %w", st.name, err)
	}
	res := AppendResult{Appended: len(fresh), Version: st.version + uint64(len(fresh)), FirstPosition: head + 1, LastPosition: head + uint64(len(fresh))}
	if _, err := s.db.txStmt(ctx, tx, qSetVersion).ExecContext(ctx, int64(res.Version), st.id); err != nil {
		return AppendResult{}, fmt.Errorf("sqlite: append to %q: set version: %w", st.name, wrapErr(err))
	}
	return res, nil
}

// isDuplicateID reports whether err is the unique index on (stream, event
// id) refusing a row.
func isDuplicateID(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed: events.stream_id, events.event_id")
}

// withoutKnown drops from fresh the events whose id the stream holds.
func (s *EventStore) withoutKnown(ctx context.Context, tx *sql.Tx, sid int64, events []*crossbus.Event, fresh []int) ([]int, error) {
	known, err := s.knownIDs(ctx, tx, sid, events, fresh)
	if err != nil || len(known) == 0 {
		return fresh, err
	}
	kept := make([]int, 0, len(fresh))
	for _, i := range fresh {
		if !known[events[i].ID()] {
			kept = append(kept, i)
		}
	}
	return kept, nil
}

// knownIDs returns which of the events' ids the stream already holds.
func (s *EventStore) knownIDs(ctx context.Context, tx *sql.Tx, sid int64, events []*crossbus.Event, idx []int) (map[string]bool, error) {
	ids := make([]string, len(idx))
	for n, i := range idx {
		ids[n] = events[i].ID()
	}
	arr, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	q := s.db.txStmt(ctx, tx, qKnownIDs)
	rows, err := q.QueryContext(ctx, sid, string(arr))
	if err != nil {
		return nil, fmt.Errorf("look up event ids: %w", wrapErr(err))
	}
	defer rows.Close()
	var known map[string]bool
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if known == nil {
			known = map[string]bool{}
		}
		known[id] = true
	}
	return known, rows.Err()
}

// StreamVersion implements sourcing.Store.
func (s *EventStore) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	var v uint64
	err := s.db.r.QueryRowContext(ctx, `SELECT version FROM streams WHERE name = ?`, stream).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: version of %q: %w", stream, wrapErr(err))
	}
	return v, nil
}

// Head implements sourcing.Store.
func (s *EventStore) Head(ctx context.Context) (uint64, error) {
	var p uint64
	if err := s.db.r.QueryRowContext(ctx, qHead).Scan(&p); err != nil {
		return 0, fmt.Errorf("sqlite: head: %w", wrapErr(err))
	}
	return p, nil
}
