package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus/internal/eventcodec"
	"github.com/crossbus/crossbus/ops"
)

// ArchiveStore keeps the event archive and replay progress of package ops
// in the database (ops.ArchiveStore). Events are stored in the compact
// encoding of the event store; Seq is SQLite's AUTOINCREMENT rowid, so it
// never goes back even after retention deleted the newest rows.
type ArchiveStore struct{ db *DB }

// Archive returns the DB's archive store:
//
//	a, err := ops.NewArchive(db.Archive(), ops.ArchiveOptions{Topics: []string{"orders"}})
func (db *DB) Archive() *ArchiveStore { return &ArchiveStore{db: db} }

var _ ops.ArchiveStore = (*ArchiveStore)(nil)

// Append implements ops.ArchiveStore.
func (s *ArchiveStore) Append(ctx context.Context, events []ops.ArchivedEvent) error {
	if len(events) == 0 {
		return nil
	}
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO archive_events (topic, published, size, body) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("sqlite: archive: %w", wrapErr(err))
		}
		defer st.Close()
		for i := range events {
			body, err := eventcodec.Append(nil, &events[i].Event)
			if err != nil {
				return fmt.Errorf("sqlite: archive event %s: %w", events[i].Event.ID(), err)
			}
			if _, err := st.ExecContext(ctx, events[i].Topic, events[i].Time.UnixNano(), len(body), body); err != nil {
				return fmt.Errorf("sqlite: archive: %w", wrapErr(err))
			}
		}
		return nil
	})
}

// where builds the query's conditions.
func archiveWhere(q ops.ArchiveQuery) (string, []any) {
	w := `topic = ? AND seq > ?`
	args := []any{q.Topic, q.AfterSeq}
	if !q.From.IsZero() {
		w += ` AND published >= ?`
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		w += ` AND published < ?`
		args = append(args, q.To.UnixNano())
	}
	return w, args
}

// Scan implements ops.ArchiveStore.
func (s *ArchiveStore) Scan(ctx context.Context, q ops.ArchiveQuery) ([]ops.ArchivedEvent, error) {
	w, args := archiveWhere(q)
	query := `SELECT seq, published, body FROM archive_events WHERE ` + w + ` ORDER BY seq`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := s.db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive scan: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []ops.ArchivedEvent
	var dec eventcodec.Decoder
	for rows.Next() {
		var seq, published int64
		var body []byte
		if err := rows.Scan(&seq, &published, &body); err != nil {
			return nil, fmt.Errorf("sqlite: archive scan: %w", wrapErr(err))
		}
		e, err := dec.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("sqlite: archived event %d: %w", seq, err)
		}
		out = append(out, ops.ArchivedEvent{Seq: seq, Topic: q.Topic, Time: time.Unix(0, published).UTC(), Event: *e})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: archive scan: %w", wrapErr(err))
	}
	return out, nil
}

// Count implements ops.ArchiveStore.
func (s *ArchiveStore) Count(ctx context.Context, q ops.ArchiveQuery) (int64, error) {
	w, args := archiveWhere(q)
	var n int64
	if err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive_events WHERE `+w, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: archive count: %w", wrapErr(err))
	}
	return n, nil
}

// Trim implements ops.ArchiveStore.
func (s *ArchiveStore) Trim(ctx context.Context, olderThan time.Time, maxBytes int64) (int64, error) {
	var n int64
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if !olderThan.IsZero() {
			r, err := tx.ExecContext(ctx, `DELETE FROM archive_events WHERE published < ?`, olderThan.UnixNano())
			if err != nil {
				return fmt.Errorf("sqlite: archive trim: %w", wrapErr(err))
			}
			k, _ := r.RowsAffected()
			n += k
		}
		if maxBytes > 0 {
			r, err := tx.ExecContext(ctx, `DELETE FROM archive_events WHERE seq <= (
				SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq DESC) AS kept FROM archive_events)
				WHERE kept > ? ORDER BY seq DESC LIMIT 1)`, maxBytes)
			if err != nil {
				return fmt.Errorf("sqlite: archive trim: %w", wrapErr(err))
			}
			k, _ := r.RowsAffected()
			n += k
		}
		return nil
	})
	return n, err
}

// Stats implements ops.ArchiveStore.
func (s *ArchiveStore) Stats(ctx context.Context) ([]ops.TopicStats, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT topic, COUNT(*), SUM(size), MIN(published), MAX(published)
		FROM archive_events GROUP BY topic ORDER BY topic`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive stats: %w", wrapErr(err))
	}
	defer rows.Close()
	out := []ops.TopicStats{}
	for rows.Next() {
		var t ops.TopicStats
		var oldest, newest int64
		if err := rows.Scan(&t.Topic, &t.Events, &t.Bytes, &oldest, &newest); err != nil {
			return nil, fmt.Errorf("sqlite: archive stats: %w", wrapErr(err))
		}
		t.Oldest, t.Newest = time.Unix(0, oldest).UTC(), time.Unix(0, newest).UTC()
		out = append(out, t)
	}
	return out, rows.Err()
}

// SaveReplay implements ops.ArchiveStore.
func (s *ArchiveStore) SaveReplay(ctx context.Context, r ops.ReplayState) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("sqlite: replay %s: %w", r.ID, err)
	}
	_, err = s.db.exec(ctx, `INSERT INTO archive_replays (id, started, state) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state`, r.ID, r.Started.UnixNano(), b)
	if err != nil {
		return fmt.Errorf("sqlite: save replay %s: %w", r.ID, wrapErr(err))
	}
	return nil
}

// LoadReplay implements ops.ArchiveStore.
func (s *ArchiveStore) LoadReplay(ctx context.Context, id string) (ops.ReplayState, error) {
	var b []byte
	err := s.db.r.QueryRowContext(ctx, `SELECT state FROM archive_replays WHERE id = ?`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return ops.ReplayState{}, fmt.Errorf("%w: sqlite: no replay %q", ops.ErrNotFound, id)
	}
	if err != nil {
		return ops.ReplayState{}, fmt.Errorf("sqlite: load replay %s: %w", id, wrapErr(err))
	}
	var r ops.ReplayState
	if err := json.Unmarshal(b, &r); err != nil {
		return ops.ReplayState{}, fmt.Errorf("sqlite: replay %s: %w", id, err)
	}
	return r, nil
}

// Replays implements ops.ArchiveStore.
func (s *ArchiveStore) Replays(ctx context.Context) ([]ops.ReplayState, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT state FROM archive_replays ORDER BY started DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: replays: %w", wrapErr(err))
	}
	defer rows.Close()
	out := []ops.ReplayState{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("sqlite: replays: %w", wrapErr(err))
		}
		var r ops.ReplayState
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("sqlite: replays: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
