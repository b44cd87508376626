package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

var errNoRows = sql.ErrNoRows

const (
	qSaveSnapshot = `INSERT INTO snapshots (stream, version, schema, state, taken) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version, schema = excluded.schema,
			state = excluded.state, taken = excluded.taken
		WHERE excluded.version >= snapshots.version`
	qMarkSent = `UPDATE outbox SET sent = ? WHERE sent IS NULL AND id IN (SELECT value FROM json_each(?))`
)

// SaveSnapshot implements sourcing.SnapshotStore.
func (s *EventStore) SaveSnapshot(ctx context.Context, snap sourcing.Snapshot) error {
	if snap.Stream == "" {
		return fmt.Errorf("%w: snapshot has no stream name", sourcing.ErrInvalidStream)
	}
	if snap.Taken.IsZero() {
		snap.Taken = time.Now()
	}
	st := s.db.writeStmt(ctx, qSaveSnapshot)
	state := snap.State
	if state == nil {
		state = []byte{}
	}
	if _, err := st.ExecContext(ctx, snap.Stream, int64(snap.Version), snap.Schema, state, snap.Taken.UnixNano()); err != nil {
		return fmt.Errorf("sqlite: save snapshot of %q: %w", snap.Stream, wrapErr(err))
	}
	return nil
}

// LoadSnapshot implements sourcing.SnapshotStore.
func (s *EventStore) LoadSnapshot(ctx context.Context, stream string) (sourcing.Snapshot, bool, error) {
	snap := sourcing.Snapshot{Stream: stream}
	var taken int64
	err := s.db.r.QueryRowContext(ctx, `SELECT version, schema, state, taken FROM snapshots WHERE stream = ?`, stream).
		Scan(&snap.Version, &snap.Schema, &snap.State, &taken)
	if errors.Is(err, sql.ErrNoRows) {
		return sourcing.Snapshot{}, false, nil
	}
	if err != nil {
		return sourcing.Snapshot{}, false, fmt.Errorf("sqlite: load snapshot of %q: %w", stream, wrapErr(err))
	}
	snap.Taken = time.Unix(0, taken).UTC()
	return snap, true, nil
}

// Checkpoint implements sourcing.CheckpointStore.
func (s *EventStore) Checkpoint(ctx context.Context, name string) (uint64, error) {
	var p uint64
	err := s.db.r.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE name = ?`, name).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: checkpoint %q: %w", name, wrapErr(err))
	}
	return p, nil
}

const qSaveCheckpoint = `INSERT INTO checkpoints (name, position, updated) VALUES (?, ?, ?)
	ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated = excluded.updated`

// SaveCheckpoint implements sourcing.CheckpointStore.
func (s *EventStore) SaveCheckpoint(ctx context.Context, name string, position uint64) error {
	if name == "" {
		return fmt.Errorf("%w: checkpoint name is empty", crossbus.ErrInvalidOption)
	}
	st := s.db.writeStmt(ctx, qSaveCheckpoint)
	if _, err := st.ExecContext(ctx, name, int64(position), time.Now().UnixNano()); err != nil {
		return fmt.Errorf("sqlite: save checkpoint %q: %w", name, wrapErr(err))
	}
	return nil
}

// SaveCheckpointTx saves a checkpoint within tx (from DB.WriteTx), so a
// projection that keeps its state in this database updates state and
// position atomically and handles each event exactly once.
func (s *EventStore) SaveCheckpointTx(ctx context.Context, tx *sql.Tx, name string, position uint64) error {
	if name == "" {
		return fmt.Errorf("%w: checkpoint name is empty", crossbus.ErrInvalidOption)
	}
	st := s.db.txStmt(ctx, tx, qSaveCheckpoint)
	if _, err := st.ExecContext(ctx, name, int64(position), time.Now().UnixNano()); err != nil {
		return fmt.Errorf("sqlite: save checkpoint %q: %w", name, wrapErr(err))
	}
	return nil
}

// Enqueue adds events to the outbox within tx (from DB.WriteTx): they are
// relayed to topic if and only if tx commits. stream orders them against
// other messages of the same stream; it may be "".
func (s *EventStore) Enqueue(ctx context.Context, tx *sql.Tx, topic, stream string, events ...*crossbus.Event) error {
	if topic == "" {
		return fmt.Errorf("%w: outbox topic is empty", crossbus.ErrInvalidOption)
	}
	st := s.db.txStmt(ctx, tx, qEnqueue)
	now := time.Now().UnixNano()
	for i, e := range events {
		if e == nil {
			return fmt.Errorf("sqlite: enqueue: event %d is nil: %w", i, crossbus.ErrInvalidEvent)
		}
		if err := crossbus.Validate(e); err != nil {
			return fmt.Errorf("sqlite: enqueue: event %d: %w", i, err)
		}
		body, err := encodeEvent(nil, e)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, topic, stream, 0, body, now); err != nil {
			return fmt.Errorf("sqlite: enqueue event %q: %w", e.ID(), wrapErr(err))
		}
	}
	return nil
}

// PendingOutbox implements sourcing.Outbox.
func (s *EventStore) PendingOutbox(ctx context.Context, limit int) ([]sourcing.OutboxMessage, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.r.QueryContext(ctx, `SELECT id, topic, stream, version, body, enqueued FROM outbox
		WHERE sent IS NULL ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read outbox: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []sourcing.OutboxMessage
	var dec decoder
	for rows.Next() {
		var m sourcing.OutboxMessage
		var body []byte
		var enq int64
		if err := rows.Scan(&m.ID, &m.Topic, &m.Stream, &m.Version, &body, &enq); err != nil {
			return nil, err
		}
		if m.Event, err = dec.decodeEvent(body); err != nil {
			return nil, fmt.Errorf("sqlite: outbox message %d: %w", m.ID, err)
		}
		m.Enqueued = time.Unix(0, enq).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// MarkSent implements sourcing.Outbox.
func (s *EventStore) MarkSent(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	arr, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	st := s.db.writeStmt(ctx, qMarkSent)
	if _, err := st.ExecContext(ctx, time.Now().UnixNano(), string(arr)); err != nil {
		return fmt.Errorf("sqlite: mark %d outbox message(s) sent: %w", len(ids), wrapErr(err))
	}
	return nil
}

// PurgeSent deletes outbox messages marked sent before t and returns how
// many it deleted. Sent messages are kept until purged, as a record of what
// was published and when.
func (s *EventStore) PurgeSent(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.exec(ctx, `DELETE FROM outbox WHERE sent IS NOT NULL AND sent < ?`, t.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge outbox: %w", wrapErr(err))
	}
	return res.RowsAffected()
}
