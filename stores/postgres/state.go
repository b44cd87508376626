package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/eventcodec"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

const (
	qSaveSnapshot = `INSERT INTO §snapshots AS s (stream, version, schema, state, taken) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version, schema = excluded.schema,
			state = excluded.state, taken = excluded.taken
		WHERE excluded.version >= s.version`
	qSaveCheckpoint = `INSERT INTO §checkpoints (name, position, updated) VALUES ($1, $2, statement_timestamp())
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated = excluded.updated`
	qEnqueue = `INSERT INTO §outbox (topic, stream, version, body, enqueued)
		SELECT $1, $2, 0, u.body, $3 FROM unnest($4::bytea[]) WITH ORDINALITY AS u(body, n) ORDER BY u.n`
	qPending = `SELECT id, topic, stream, version, body, enqueued FROM §outbox
		WHERE sent IS NULL ORDER BY id LIMIT $1`
	qMarkSent = `UPDATE §outbox SET sent = statement_timestamp() WHERE sent IS NULL AND id = ANY($1)`
	// qFence checks, and locks for the transaction in share mode, that the
	// lease's term is current: a new holder's TryAcquire waits for the
	// fenced write to commit, so the write happens within the term.
	qFence = `SELECT 1 FROM §leases WHERE name = $1 AND holder = $2 AND token = $3
		AND expires > statement_timestamp() FOR SHARE`
)

// SaveSnapshot implements sourcing.SnapshotStore.
func (s *EventStore) SaveSnapshot(ctx context.Context, snap sourcing.Snapshot) error {
	if snap.Stream == "" {
		return fmt.Errorf("%w: snapshot has no stream name", sourcing.ErrInvalidStream)
	}
	if snap.Taken.IsZero() {
		snap.Taken = time.Now()
	}
	state := snap.State
	if state == nil {
		state = []byte{}
	}
	if _, err := s.db.conn(ctx).Exec(ctx, s.db.q(qSaveSnapshot), snap.Stream, int64(snap.Version), snap.Schema, state, snap.Taken); err != nil {
		return s.db.wrap(fmt.Sprintf("save snapshot of %q", snap.Stream), err)
	}
	return nil
}

// LoadSnapshot implements sourcing.SnapshotStore.
func (s *EventStore) LoadSnapshot(ctx context.Context, stream string) (sourcing.Snapshot, bool, error) {
	snap := sourcing.Snapshot{Stream: stream}
	var version int64
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT version, schema, state, taken FROM §snapshots WHERE stream = $1`), stream).
		Scan(&version, &snap.Schema, &snap.State, &snap.Taken)
	if errors.Is(err, pgx.ErrNoRows) {
		return sourcing.Snapshot{}, false, nil
	}
	if err != nil {
		return sourcing.Snapshot{}, false, s.db.wrap(fmt.Sprintf("load snapshot of %q", stream), err)
	}
	snap.Version = uint64(version)
	snap.Taken = snap.Taken.UTC()
	return snap, true, nil
}

// Checkpoint implements sourcing.CheckpointStore.
func (s *EventStore) Checkpoint(ctx context.Context, name string) (uint64, error) {
	var p int64
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT position FROM §checkpoints WHERE name = $1`), name).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.db.wrap(fmt.Sprintf("checkpoint %q", name), err)
	}
	return uint64(p), nil
}

// SaveCheckpoint implements sourcing.CheckpointStore.
func (s *EventStore) SaveCheckpoint(ctx context.Context, name string, position uint64) error {
	return s.saveCheckpoint(ctx, s.db.conn(ctx), name, position)
}

// SaveCheckpointTx saves a checkpoint within tx (from DB.WriteTx), so a
// projection that keeps its state in this database updates state and
// position atomically and handles each event exactly once.
func (s *EventStore) SaveCheckpointTx(ctx context.Context, tx pgx.Tx, name string, position uint64) error {
	return s.saveCheckpoint(ctx, tx, name, position)
}

func (s *EventStore) saveCheckpoint(ctx context.Context, q querier, name string, position uint64) error {
	if name == "" {
		return fmt.Errorf("%w: checkpoint name is empty", crossbus.ErrInvalidOption)
	}
	if _, err := q.Exec(ctx, s.db.q(qSaveCheckpoint), name, int64(position)); err != nil {
		return s.db.wrap(fmt.Sprintf("save checkpoint %q", name), err)
	}
	return nil
}

// Enqueue adds events to the outbox within tx (from DB.WriteTx or TxFrom):
// they are relayed to topic if and only if tx commits. stream orders them
// against other messages of the same stream; it may be "".
//
// Outbox ids come from a sequence: messages of one transaction rise in
// enqueue order, and appends take theirs under the append lock, so they
// rise in commit order; but two transactions that enqueue concurrently
// (without appending) may commit in the other order than their ids. The
// relay publishes by id, so such messages of one stream go out in id
// order; enqueue a stream's messages from one transaction at a time (or
// append them) where their order matters.
func (s *EventStore) Enqueue(ctx context.Context, tx pgx.Tx, topic, stream string, events ...*crossbus.Event) error {
	if topic == "" {
		return fmt.Errorf("%w: outbox topic is empty", crossbus.ErrInvalidOption)
	}
	bodies := make([][]byte, len(events))
	for i, e := range events {
		if e == nil {
			return fmt.Errorf("postgres: enqueue: event %d is nil: %w", i, crossbus.ErrInvalidEvent)
		}
		if err := crossbus.Validate(e); err != nil {
			return fmt.Errorf("postgres: enqueue: event %d: %w", i, err)
		}
		b, err := eventcodec.Append(nil, e)
		if err != nil {
			return err
		}
		bodies[i] = b
	}
	if len(bodies) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.db.q(qEnqueue), topic, stream, time.Now(), bodies); err != nil {
		return s.db.wrap(fmt.Sprintf("enqueue %d event(s) to %q", len(bodies), topic), err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, s.db.opts.Schema); err != nil {
		return s.db.wrap("enqueue: notify", err)
	}
	return nil
}

// PendingOutbox implements sourcing.Outbox.
func (s *EventStore) PendingOutbox(ctx context.Context, limit int) ([]sourcing.OutboxMessage, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.conn(ctx).Query(ctx, s.db.q(qPending), limit)
	if err != nil {
		return nil, s.db.wrap("read outbox", err)
	}
	defer rows.Close()
	var out []sourcing.OutboxMessage
	var dec eventcodec.Decoder
	for rows.Next() {
		var m sourcing.OutboxMessage
		var id, version int64
		var body []byte
		if err := rows.Scan(&id, &m.Topic, &m.Stream, &version, &body, &m.Enqueued); err != nil {
			return nil, s.db.wrap("read outbox", err)
		}
		m.ID, m.Version, m.Enqueued = uint64(id), uint64(version), m.Enqueued.UTC()
		if m.Event, err = dec.Decode(body); err != nil {
			return nil, fmt.Errorf("postgres: outbox message %d: %w", m.ID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.db.wrap("read outbox", err)
	}
	return out, nil
}

// MarkSent implements sourcing.Outbox. When ctx carries a leader lease
// (leader.WithLease; a Relay with a leader store passes one), the mark is
// fenced: it commits only while the lease's term is current in this
// database's leases, and otherwise returns an error matching
// leader.ErrFenced and marks nothing.
func (s *EventStore) MarkSent(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	arr := make([]int64, len(ids))
	for i, id := range ids {
		arr[i] = int64(id)
	}
	op := fmt.Sprintf("mark %d outbox message(s) sent", len(ids))
	if _, ok := leader.LeaseFrom(ctx); !ok {
		if _, err := s.db.conn(ctx).Exec(ctx, s.db.q(qMarkSent), arr); err != nil {
			return s.db.wrap(op, err)
		}
		return nil
	}
	return s.db.writeTx(ctx, op, func(tx pgx.Tx) error {
		if err := s.db.fence(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.db.q(qMarkSent), arr); err != nil {
			return s.db.wrap(op, err)
		}
		return nil
	})
}

// fence checks, in tx, that the lease ctx carries (if any) is in its term,
// and holds the lease's row in share mode until tx ends.
func (db *DB) fence(ctx context.Context, tx pgx.Tx) error {
	l, ok := leader.LeaseFrom(ctx)
	if !ok {
		return nil
	}
	var one int
	err := tx.QueryRow(ctx, db.q(qFence), l.Name, l.Holder, l.Token).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: lease %q of %q, token %d: %w", l.Name, l.Holder, l.Token, leader.ErrFenced)
	}
	if err != nil {
		return db.wrap("check the lease", err)
	}
	return nil
}

// PurgeSent deletes outbox messages marked sent before t and returns how
// many it deleted. Sent messages are kept until purged, as a record of what
// was published and when.
func (s *EventStore) PurgeSent(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.db.conn(ctx).Exec(ctx, s.db.q(`DELETE FROM §outbox WHERE sent IS NOT NULL AND sent < $1`), t)
	if err != nil {
		return 0, s.db.wrap("purge outbox", err)
	}
	return tag.RowsAffected(), nil
}
