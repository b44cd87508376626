package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus/internal/eventcodec"
)

// readPage is how many rows one read query fetches; a read holds no
// transaction open while its caller handles a page.
const readPage = 2000

const (
	qReadAll = `SELECT position, stream_id, version, recorded, body FROM §events
		WHERE position >= $1 ORDER BY position LIMIT $2`
	qReadStream = `SELECT position, stream_id, version, recorded, body FROM §events
		WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`
	qStreamNames = `SELECT id, name FROM §streams WHERE id = ANY($1)`
)

// ReadStream implements sourcing.Store.
func (s *EventStore) ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		var sid int64
		err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT id FROM §streams WHERE name = $1`), stream).Scan(&sid)
		if errors.Is(err, pgx.ErrNoRows) {
			return
		}
		if err != nil {
			yield(Record{}, s.db.wrap(fmt.Sprintf("read %q", stream), err))
			return
		}
		s.db.names.Store(sid, stream)
		s.scan(ctx, fmt.Sprintf("read %q", stream), s.db.q(qReadStream), func(last *row) []any {
			if last == nil {
				return []any{sid, int64(max(from, 1))}
			}
			return []any{sid, last.version + 1}
		}, yield)
	}
}

// ReadAll implements sourcing.Store. Positions are in commit order, so a
// reader that follows the log from the last position it saw never skips an
// event (see the package documentation).
func (s *EventStore) ReadAll(ctx context.Context, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		s.scan(ctx, "read all", s.db.q(qReadAll), func(last *row) []any {
			if last == nil {
				return []any{int64(max(from, 1))}
			}
			return []any{last.position + 1}
		}, yield)
	}
}

// be decodes PostgreSQL's binary integers.
var be = binary.BigEndian

// row is an events row as read.
type row struct {
	position, streamID, version int64
	recorded                    time.Time
	body                        []byte
}

// scan yields the records of query page by page: args returns a page's
// arguments after the last row of the one before (nil for the first). A
// reader goroutine fetches the next page while this one decodes and yields
// the current one, so the server's work and the decoding overlap. Each page
// is read to its end before it is handed over, so the caller's handling
// holds no connection or transaction.
func (s *EventStore) scan(ctx context.Context, op, query string, args func(last *row) []any, yield func(Record, error) bool) {
	rctx, cancel := context.WithCancel(ctx)
	pages := make(chan rawPage, 1)
	go s.fetch(rctx, query, args, pages)
	defer func() {
		cancel()
		for range pages { // wait for the reader to return its connection
		}
	}()
	var dec eventcodec.Decoder
	for p := range pages {
		if p.err == nil {
			p.err = s.resolveNames(ctx, p.rows)
		}
		if p.err != nil {
			yield(Record{}, s.db.wrap(op, p.err))
			return
		}
		blocks := make([]eventcodec.Block, len(p.rows))
		for i := range p.rows {
			r := &p.rows[i]
			if err := dec.DecodeInto(r.body, &blocks[i]); err != nil {
				yield(Record{}, fmt.Errorf("postgres: %s: event at position %d: %w", op, r.position, err))
				return
			}
			name, _ := s.db.names.Load(r.streamID)
			rec := Record{Stream: name.(string), Version: uint64(r.version), Position: uint64(r.position),
				Recorded: r.recorded, Event: &blocks[i].E}
			if !yield(rec, nil) {
				return
			}
		}
	}
	if err := ctx.Err(); err != nil {
		yield(Record{}, fmt.Errorf("postgres: %s: %w", op, err))
	}
}

// rawPage is one page of rows, or the error that ended the read.
type rawPage struct {
	rows []row
	err  error
}

// fetch reads pages into out until a short page, an error (sent as the
// last page) or the end of ctx, then closes out.
func (s *EventStore) fetch(ctx context.Context, query string, args func(last *row) []any, out chan<- rawPage) {
	defer close(out)
	var last *row
	for {
		rows, err := s.readPage(ctx, query, append(args(last), readPage))
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- rawPage{rows: rows, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil || len(rows) < readPage {
			return
		}
		last = &rows[len(rows)-1]
	}
}

// pgEpoch is PostgreSQL's zero time, which binary timestamps count from in
// microseconds.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// readPage runs one page's query and returns its rows. The columns come in
// PostgreSQL's binary format (int8, timestamptz, bytea), decoded here
// without the driver's per-column scanning; the bodies of a page share one
// allocation.
func (s *EventStore) readPage(ctx context.Context, query string, args []any) ([]row, error) {
	rs, err := s.db.conn(ctx).Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	binary := true
	for _, f := range rs.FieldDescriptions() {
		binary = binary && f.Format == pgx.BinaryFormatCode
	}
	out := make([]row, 0, 256)
	var arena []byte
	for rs.Next() {
		var r row
		if !binary {
			if err := rs.Scan(&r.position, &r.streamID, &r.version, &r.recorded, &r.body); err != nil {
				return nil, err
			}
			r.recorded = r.recorded.UTC()
			out = append(out, r)
			continue
		}
		v := rs.RawValues()
		if len(v) != 5 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 8 || len(v[3]) != 8 {
			return nil, fmt.Errorf("unexpected row layout")
		}
		r.position = int64(be.Uint64(v[0]))
		r.streamID = int64(be.Uint64(v[1]))
		r.version = int64(be.Uint64(v[2]))
		r.recorded = pgEpoch.Add(time.Duration(int64(be.Uint64(v[3]))) * time.Microsecond)
		if len(arena) < len(v[4]) {
			arena = make([]byte, max(64<<10, len(v[4])))
		}
		r.body = arena[:len(v[4]):len(v[4])]
		arena = arena[len(v[4]):]
		copy(r.body, v[4])
		out = append(out, r)
	}
	return out, rs.Err()
}

// resolveNames makes sure the names of the rows' streams are cached. A
// stream's id and name never change, so the cache needs no invalidation.
func (s *EventStore) resolveNames(ctx context.Context, rows []row) error {
	var missing []int64
	var prev int64 = -1
	for i := range rows {
		id := rows[i].streamID
		if id == prev {
			continue
		}
		prev = id
		if _, ok := s.db.names.Load(id); !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rs, err := s.db.conn(ctx).Query(ctx, s.db.q(qStreamNames), missing)
	if err != nil {
		return err
	}
	var id int64
	var name string
	_, err = pgx.ForEachRow(rs, []any{&id, &name}, func() error {
		s.db.names.Store(id, name)
		return nil
	})
	return err
}
