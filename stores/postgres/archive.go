package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus/internal/eventcodec"
	"github.com/crossbus/crossbus/ops"
)

// ArchiveStore keeps the event archive and replay progress of package ops
// in the database (ops.ArchiveStore). Events are stored in the compact
// encoding of the event store; Seq is an identity column.
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
	rows := make([][]any, len(events))
	for i := range events {
		body, err := eventcodec.Append(nil, &events[i].Event)
		if err != nil {
			return fmt.Errorf("postgres: archive event %s: %w", events[i].Event.ID(), err)
		}
		rows[i] = []any{events[i].Topic, events[i].Time.UnixNano(), len(body), body}
	}
	return s.db.writeTx(ctx, "archive", func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		q := s.db.q(`INSERT INTO §archive_events (topic, published, size, body) VALUES ($1, $2, $3, $4)`)
		for _, r := range rows {
			b.Queue(q, r...)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return s.db.wrap("archive", err)
		}
		return nil
	})
}

func archiveWhere(q ops.ArchiveQuery) (string, []any) {
	w := `topic = $1 AND seq > $2`
	args := []any{q.Topic, q.AfterSeq}
	if !q.From.IsZero() {
		args = append(args, q.From.UnixNano())
		w += ` AND published >= $` + strconv.Itoa(len(args))
	}
	if !q.To.IsZero() {
		args = append(args, q.To.UnixNano())
		w += ` AND published < $` + strconv.Itoa(len(args))
	}
	return w, args
}

// Scan implements ops.ArchiveStore.
func (s *ArchiveStore) Scan(ctx context.Context, q ops.ArchiveQuery) ([]ops.ArchivedEvent, error) {
	w, args := archiveWhere(q)
	query := `SELECT seq, published, body FROM §archive_events WHERE ` + w + ` ORDER BY seq`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query += ` LIMIT $` + strconv.Itoa(len(args))
	}
	rows, err := s.db.pool.Query(ctx, s.db.q(query), args...)
	if err != nil {
		return nil, s.db.wrap("archive scan", err)
	}
	defer rows.Close()
	var out []ops.ArchivedEvent
	var dec eventcodec.Decoder
	for rows.Next() {
		var seq, published int64
		var body []byte
		if err := rows.Scan(&seq, &published, &body); err != nil {
			return nil, s.db.wrap("archive scan", err)
		}
		e, err := dec.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("postgres: archived event %d: %w", seq, err)
		}
		out = append(out, ops.ArchivedEvent{Seq: seq, Topic: q.Topic, Time: time.Unix(0, published).UTC(), Event: *e})
	}
	if err := rows.Err(); err != nil {
		return nil, s.db.wrap("archive scan", err)
	}
	return out, nil
}

// Count implements ops.ArchiveStore.
func (s *ArchiveStore) Count(ctx context.Context, q ops.ArchiveQuery) (int64, error) {
	w, args := archiveWhere(q)
	var n int64
	if err := s.db.pool.QueryRow(ctx, s.db.q(`SELECT COUNT(*) FROM §archive_events WHERE `+w), args...).Scan(&n); err != nil {
		return 0, s.db.wrap("archive count", err)
	}
	return n, nil
}

// Trim implements ops.ArchiveStore.
func (s *ArchiveStore) Trim(ctx context.Context, olderThan time.Time, maxBytes int64) (int64, error) {
	var n int64
	err := s.db.writeTx(ctx, "archive trim", func(tx pgx.Tx) error {
		if !olderThan.IsZero() {
			tag, err := tx.Exec(ctx, s.db.q(`DELETE FROM §archive_events WHERE published < $1`), olderThan.UnixNano())
			if err != nil {
				return s.db.wrap("archive trim", err)
			}
			n += tag.RowsAffected()
		}
		if maxBytes > 0 {
			tag, err := tx.Exec(ctx, s.db.q(`DELETE FROM §archive_events WHERE seq <= (
				SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq DESC) AS kept FROM §archive_events) k
				WHERE kept > $1 ORDER BY seq DESC LIMIT 1)`), maxBytes)
			if err != nil {
				return s.db.wrap("archive trim", err)
			}
			n += tag.RowsAffected()
		}
		return nil
	})
	return n, err
}

// Stats implements ops.ArchiveStore.
func (s *ArchiveStore) Stats(ctx context.Context) ([]ops.TopicStats, error) {
	rows, err := s.db.pool.Query(ctx, s.db.q(`SELECT topic, COUNT(*), SUM(size)::bigint, MIN(published), MAX(published)
		FROM §archive_events GROUP BY topic ORDER BY topic`))
	if err != nil {
		return nil, s.db.wrap("archive stats", err)
	}
	defer rows.Close()
	out := []ops.TopicStats{}
	for rows.Next() {
		var t ops.TopicStats
		var oldest, newest int64
		if err := rows.Scan(&t.Topic, &t.Events, &t.Bytes, &oldest, &newest); err != nil {
			return nil, s.db.wrap("archive stats", err)
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
		return fmt.Errorf("postgres: replay %s: %w", r.ID, err)
	}
	_, err = s.db.pool.Exec(ctx, s.db.q(`INSERT INTO §archive_replays (id, started, state) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state`), r.ID, r.Started.UnixNano(), b)
	if err != nil {
		return s.db.wrap("save replay "+r.ID, err)
	}
	return nil
}

// LoadReplay implements ops.ArchiveStore.
func (s *ArchiveStore) LoadReplay(ctx context.Context, id string) (ops.ReplayState, error) {
	var b []byte
	err := s.db.pool.QueryRow(ctx, s.db.q(`SELECT state FROM §archive_replays WHERE id = $1`), id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return ops.ReplayState{}, fmt.Errorf("%w: postgres: no replay %q", ops.ErrNotFound, id)
	}
	if err != nil {
		return ops.ReplayState{}, s.db.wrap("load replay "+id, err)
	}
	var r ops.ReplayState
	if err := json.Unmarshal(b, &r); err != nil {
		return ops.ReplayState{}, fmt.Errorf("postgres: replay %s: %w", id, err)
	}
	return r, nil
}

// Replays implements ops.ArchiveStore.
func (s *ArchiveStore) Replays(ctx context.Context) ([]ops.ReplayState, error) {
	rows, err := s.db.pool.Query(ctx, s.db.q(`SELECT state FROM §archive_replays ORDER BY started DESC, id`))
	if err != nil {
		return nil, s.db.wrap("replays", err)
	}
	defer rows.Close()
	out := []ops.ReplayState{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, s.db.wrap("replays", err)
		}
		var r ops.ReplayState
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("postgres: replays: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
