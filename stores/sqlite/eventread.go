package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/crossbus/crossbus/patterns/sourcing"
)

// ReadStream implements sourcing.Store.
func (s *EventStore) ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		var sid int64
		err := s.db.r.QueryRowContext(ctx, `SELECT id FROM streams WHERE name = ?`, stream).Scan(&sid)
		if errors.Is(err, sql.ErrNoRows) {
			return
		}
		if err != nil {
			yield(Record{}, fmt.Errorf("sqlite: read %q: %w", stream, wrapErr(err)))
			return
		}
		s.scan(ctx, scanQuery{
			sql: `SELECT body FROM events WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?`,
			args: func(last []byte) []any {
				v, _ := recordHeader(last)
				return []any{sid, int64(v) + 1}
			},
			from: []any{sid, int64(max(from, 1))},
		}, yield)
	}
}

// ReadAll implements sourcing.Store.
func (s *EventStore) ReadAll(ctx context.Context, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		s.scan(ctx, scanQuery{
			sql: `SELECT body FROM events WHERE position >= ? ORDER BY position LIMIT ?`,
			args: func(last []byte) []any {
				_, p := recordHeader(last)
				return []any{int64(p) + 1}
			},
			from: []any{int64(max(from, 1))},
		}, yield)
	}
}

// Record is sourcing.Record.
type Record = sourcing.Record

// scanQuery is a paged read of record bodies: sql takes the arguments of
// from (first page) or of args(last body) (later pages), then the page size.
type scanQuery struct {
	sql  string
	from []any
	args func(last []byte) []any
}

type rawPage struct {
	bodies [][]byte
	err    error
}

// scan yields the rows of q as records. A reader goroutine fetches pages on
// one read connection, through the driver directly (database/sql's
// per-column conversions cost more than the read), while this goroutine
// decodes and yields the previous page: on a multi-core machine reading and
// decoding overlap. A page is read to its end before it is handed over, so
// the caller's handling never holds a read transaction open.
func (s *EventStore) scan(ctx context.Context, q scanQuery, yield func(Record, error) bool) {
	rctx, cancel := context.WithCancel(ctx)
	pages := make(chan rawPage, 2)
	var complete bool // set by fetch before it closes pages
	go s.fetch(rctx, q, pages, &complete)
	defer func() {
		cancel()
		for range pages { // wait for the reader to stop and release its connection
		}
	}()
	var dec decoder
	for p := range pages {
		if p.err != nil {
			yield(Record{}, fmt.Errorf("sqlite: read: %w", wrapErr(p.err)))
			return
		}
		blocks := make([]eventBlock, len(p.bodies))
		for i, body := range p.bodies {
			rec, err := dec.decodeRecord(body, &blocks[i])
			if err != nil {
				yield(Record{}, fmt.Errorf("sqlite: read: after position %d: %w", rec.Position, err))
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
	if !complete {
		// The reader stopped early without a page to say why: the context
		// ended.
		err := ctx.Err()
		if err == nil {
			err = context.Canceled
		}
		yield(Record{}, fmt.Errorf("sqlite: read: %w", err))
	}
}

// fetch reads the pages of q into out until the rows end, ctx ends or an
// error occurs (sent as the last page, when ctx allows); before it closes
// out it sets *done to whether it read to the end or sent its error.
func (s *EventStore) fetch(ctx context.Context, q scanQuery, out chan<- rawPage, done *bool) (complete bool) {
	defer close(out)
	defer func() { *done = complete }() // runs before the close: the reader sees it
	send := func(p rawPage) bool {
		select {
		case out <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	conn, err := s.db.r.Conn(ctx)
	if err != nil {
		return send(rawPage{err: err})
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return errors.New("driver connection cannot prepare with a context")
		}
		stmt, err := pc.PrepareContext(ctx, q.sql)
		if err != nil {
			return err
		}
		defer stmt.Close()
		sq, ok := stmt.(driver.StmtQueryContext)
		if !ok {
			return errors.New("driver statement cannot query with a context")
		}
		args := q.from
		dest := make([]driver.Value, 1)
		named := make([]driver.NamedValue, 0, 4)
		for {
			named = named[:0]
			for i, a := range append(args, int64(readPage)) {
				named = append(named, driver.NamedValue{Ordinal: i + 1, Value: a})
			}
			rows, err := sq.QueryContext(ctx, named)
			if err != nil {
				return err
			}
			page := make([][]byte, 0, readPage)
			for {
				if err := rows.Next(dest); err != nil {
					if err == io.EOF {
						break
					}
					rows.Close()
					return err
				}
				body, _ := dest[0].([]byte)
				page = append(page, body)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if len(page) > 0 && !send(rawPage{bodies: page}) {
				return errStop
			}
			if len(page) < readPage {
				return nil
			}
			args = q.args(page[len(page)-1])
		}
	})
	switch {
	case err == nil:
		return true
	case errors.Is(err, errStop):
		return false
	}
	return send(rawPage{err: err})
}

// errStop ends a read whose consumer went away.
var errStop = errors.New("sqlite: read stopped")
