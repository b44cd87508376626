// Package sqlite keeps crossbus's durable state in one SQLite database file,
// with the pure-Go modernc.org/sqlite driver (no cgo): the idempotency store
// (crossbus.IdempotencyStore, and the crossbus.InboxStore of the
// transactional inbox), the event store with snapshots, checkpoints and the
// transactional outbox (sourcing.Store and friends), and chain instance
// state (chain.Store).
//
//	db, err := sqlite.Open(ctx, "state.db", sqlite.Options{})
//	defer db.Close()
//	route := crossbus.WithIdempotency(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true})
//	events := db.Events()     // sourcing.Store, SnapshotStore, CheckpointStore, Outbox
//	chains := db.Chains()     // chain.Store
//
// # Concurrency
//
// The database runs in WAL mode: readers never block the writer or each
// other. All writes of a DB go through one connection and every write
// transaction starts with BEGIN IMMEDIATE, so writers in this process queue
// in Go instead of failing with SQLITE_BUSY, and a transaction never has to
// upgrade a read lock. Other processes may open the same file; their writes
// wait for the lock up to Options.BusyTimeout.
//
// # Transactional inbox
//
// The idempotency store is also a crossbus.InboxStore. A route with
// IdempotencyOptions.Transactional runs its handler inside a write
// transaction of the DB and marks the event handled in that transaction, so
// the handler's own writes and the idempotency record commit together:
//
//	router.Handle("payments", "ledger", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
//		tx, _ := sqlite.TxFrom(ctx) // the inbox transaction
//		_, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = ?`, e.Subject())
//		return err
//	}), crossbus.WithIdempotency(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true}))
//
// The handler reaches the transaction with TxFrom. The DB's own methods
// that write (WriteTx, EventStore.Append, SaveCheckpoint, ...) join it when
// given the handler's context: WriteTx runs in a savepoint of it, so an
// inbox handler can also append events and enqueue outbox messages that
// commit with the event (a transactional inbox and outbox in one commit).
// Called from the handler with another context (context.Background(), say)
// or through DB.SQL, a write would wait for the write connection that the
// handler's own transaction holds, and never return: pass the handler's
// context.
//
// Crash guarantee: wherever the process dies, the event is either applied
// and marked completed, or neither. Killed before the commit, the handler's
// writes roll back and its claim runs out after the lease (the route renews
// it while the handler runs, so a short lease is safe); the redelivery runs
// the handler again. Killed after the commit but before the broker heard
// the acknowledgement, the redelivery finds the event completed and is
// acknowledged without running the handler. So what the handler writes
// through the transaction is applied exactly once per event, for as long
// as the completed record lasts (IdempotencyOptions.TTL). Effects outside
// the database (HTTP calls, publishes) get no such guarantee; publish
// through the outbox.
//
// SQLite has one writer: the transaction holds the write lock while the
// handler runs, so transactional handlers run one at a time per database
// file (route concurrency does not make them parallel), and every other
// write, in this process or another, waits for the handler to return; so
// do the lease renewals of handlers queued for the lock. Keep transactional
// handlers short, do slow work (network calls) before writing or in a
// non-transactional route, and keep the lease well above the time handlers
// queue for the lock.
//
// # Durability
//
// By default synchronous=NORMAL: a committed transaction survives a crash
// of the process; a power loss may lose the last transactions, never the
// database. Options.SyncFull makes every commit durable across power loss
// at the cost of an fsync per commit.
//
// # Schema
//
// The schema is created and upgraded on Open by migrations embedded in the
// package (table schema_migrations records the versions applied). Opening a
// file whose schema is newer than the package fails rather than guessing.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// Options configure a DB. The zero value is valid.
type Options struct {
	// Outbox, when set, enqueues every appended event it routes to a topic
	// in the transaction of the append (see sourcing.Relay).
	Outbox sourcing.OutboxRoute
	// BusyTimeout is how long a statement waits for a lock held by another
	// process before failing (default 10s).
	BusyTimeout time.Duration
	// SyncFull makes every commit durable across power loss
	// (synchronous=FULL); the default is synchronous=NORMAL.
	SyncFull bool
	// ReadConns bounds the connections used for reads (default 4).
	ReadConns int
	// MmapBytes is how much of the file reads may memory-map (default
	// 256 MiB; negative disables memory-mapped reads).
	MmapBytes int64
	// CacheKiB is each connection's page cache size (default 16384).
	CacheKiB int
	// PurgeInterval is how often expired idempotency records and step
	// claims are deleted (default 1m).
	PurgeInterval time.Duration
}

// DB is one SQLite database file holding every crossbus store. It is safe
// for concurrent use; close it with Close.
type DB struct {
	path string
	opts Options
	w    *sql.DB // one connection: every write
	r    *sql.DB // read connections

	mu      sync.Mutex
	changed chan struct{}
	stmts   map[string]*sql.Stmt // prepared on w at Open; read-only after

	idem   *IdempotencyStore
	events *EventStore
	chains *ChainStore
}

// Open opens (creating if needed) the database file at path and brings its
// schema up to date.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: sqlite: database path is empty", crossbus.ErrInvalidOption)
	}
	if path == ":memory:" {
		return nil, fmt.Errorf("%w: sqlite: in-memory databases are not supported (the store uses separate read and write connections); use a file", crossbus.ErrInvalidOption)
	}
	if opts.BusyTimeout < 0 || opts.ReadConns < 0 || opts.CacheKiB < 0 || opts.PurgeInterval < 0 {
		return nil, fmt.Errorf("%w: sqlite: BusyTimeout, ReadConns, CacheKiB and PurgeInterval must not be negative", crossbus.ErrInvalidOption)
	}
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: sqlite: the directory of %s does not exist (create it first)", crossbus.ErrInvalidOption, path)
		}
	}
	opts.BusyTimeout = cmp.Or(opts.BusyTimeout, 10*time.Second)
	opts.ReadConns = cmp.Or(opts.ReadConns, 4)
	opts.MmapBytes = max(cmp.Or(opts.MmapBytes, 256<<20), 0) // negative: no memory map
	opts.CacheKiB = cmp.Or(opts.CacheKiB, 16384)
	opts.PurgeInterval = cmp.Or(opts.PurgeInterval, time.Minute)
	db := &DB{path: path, opts: opts, changed: make(chan struct{})}
	sync := "NORMAL"
	if opts.SyncFull {
		sync = "FULL"
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=mmap_size(%d)&_pragma=cache_size(-%d)",
		opts.BusyTimeout.Milliseconds(), opts.MmapBytes, opts.CacheKiB)
	base := "file:" + (&url.URL{Path: path}).EscapedPath() + "?"
	w, err := sql.Open("sqlite", base+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous("+sync+")&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db.w = w
	if err := db.migrate(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}
	if err := db.prepare(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", base+common+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	r.SetConnMaxIdleTime(0)
	db.r = r
	db.idem = &IdempotencyStore{db: db}
	db.events = &EventStore{db: db}
	db.chains = &ChainStore{db: db}
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Idempotency returns the idempotency store (crossbus.IdempotencyStore).
func (db *DB) Idempotency() *IdempotencyStore { return db.idem }

// Events returns the event store, which is also the snapshot store, the
// checkpoint store and the outbox.
func (db *DB) Events() *EventStore { return db.events }

// Chains returns the chain state store (chain.Store).
func (db *DB) Chains() *ChainStore { return db.chains }

// SQL returns the database/sql handle of the write connection, for an
// application's own schema. Keep its use short: it is the only writer.
// Use WriteTx to change application state together with events. Inside a
// transactional handler, write through TxFrom(ctx) instead: the handler's
// transaction holds this connection until the handler returns.
func (db *DB) SQL() *sql.DB { return db.w }

// Changed implements sourcing.Notifier: the channel is closed at the next
// commit in this process that appends events or enqueues outbox messages.
func (db *DB) Changed() <-chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.changed
}

func (db *DB) notify() {
	db.mu.Lock()
	close(db.changed)
	db.changed = make(chan struct{})
	db.mu.Unlock()
}

// WriteTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits when
// fn returns nil. Everything fn does through tx — the application's own
// statements, EventStore.AppendTx, EventStore.Enqueue — commits or rolls
// back together, which is what makes the outbox transactional. fn must not
// call other DB methods that write (they wait for the one write connection
// that fn holds).
//
// Inside a transactional handler (see the package documentation), with the
// handler's context, WriteTx joins the handler's inbox transaction instead
// of starting one: fn runs in a savepoint of it, an error from fn (or a
// panic) undoes only fn's writes, and what fn wrote commits when the
// handler's transaction commits, together with the event's idempotency
// record, or not at all. It cannot commit on its own there: the inbox
// transaction holds the one write connection until the handler returns.
func (db *DB) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := db.writeTx(ctx, fn); err != nil {
		return err
	}
	if db.joined(ctx) == nil {
		db.notify()
	}
	return nil
}

// writeTx runs fn in a write transaction, or in a savepoint of the inbox
// transaction that ctx carries.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if tx := db.joined(ctx); tx != nil {
		return savepoint(ctx, tx, fn)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin write transaction: %w", wrapErr(err))
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", wrapErr(err))
	}
	return nil
}

// Close closes the database. It does not wait for iterators still reading.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// wrapErr maps closed-database errors to crossbus.ErrClosed.
func wrapErr(err error) error {
	if errors.Is(err, sql.ErrConnDone) || err != nil && err.Error() == "sql: database is closed" {
		return fmt.Errorf("%w: %w", crossbus.ErrClosed, err)
	}
	return err
}

// writeQueries are prepared on the write connection at Open: preparing
// later could wait for the connection a transaction holds.
var writeQueries = []string{
	qStreamByName, qKnownIDs, qNewStream, qHead, qSetVersion, qEnqueue,
	qIdemClaim, qIdemStatus, qIdemComplete, qIdemRenew, qIdemRelease, qIdemPurge, qIdemHeld, qIdemCompleteTx,
	qSaveSnapshot, qSaveCheckpoint, qMarkSent,
	qChainCreate, qChainSave, qStepClaim, qStepStatus, qStepFinish, qStepRelease, qStepPurge, qChainPurge,
}

func (db *DB) prepare(ctx context.Context) error {
	db.stmts = make(map[string]*sql.Stmt, len(writeQueries))
	queries := writeQueries
	for _, t := range []insertTable{insertEvents, insertOutbox} {
		for n := 1; n <= maxInsertRows; n *= 2 {
			queries = append(queries, t.query(n))
		}
	}
	for _, q := range queries {
		st, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
		db.stmts[q] = st
	}
	return nil
}

// stmt returns a query prepared at Open.
func (db *DB) stmt(query string) *sql.Stmt {
	st, ok := db.stmts[query]
	if !ok {
		panic("sqlite: query not prepared at Open: " + query)
	}
	return st
}

// txStmt returns a query prepared at Open, bound to tx (database/sql reuses
// the write connection's prepared statement).
func (db *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	return tx.StmtContext(ctx, db.stmt(query))
}

// writeStmt returns a write query prepared at Open: bound to the inbox
// transaction when ctx carries one of db (a handler's writes join it rather
// than wait for the connection it holds), else on the write connection.
func (db *DB) writeStmt(ctx context.Context, query string) *sql.Stmt {
	if tx := db.joined(ctx); tx != nil {
		return db.txStmt(ctx, tx, query)
	}
	return db.stmt(query)
}

// exec runs a write statement that is not prepared at Open, in the inbox
// transaction when ctx carries one of db.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx := db.joined(ctx); tx != nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return db.w.ExecContext(ctx, query, args...)
}

// insertTable describes a table that takes multi-row inserts.
type insertTable struct {
	prefix string // INSERT INTO t (cols) VALUES
	cols   int
}

var (
	insertEvents = insertTable{`INSERT INTO events (position, stream_id, version, event_id, body) VALUES `, 5}
	insertOutbox = insertTable{`INSERT INTO outbox (topic, stream, version, body, enqueued) VALUES `, 5}
)

// maxInsertRows is the largest multi-row insert; batches are split into
// power-of-two chunks up to it, each a statement prepared at Open.
const maxInsertRows = 64

func (t insertTable) query(rows int) string {
	var b strings.Builder
	b.WriteString(t.prefix)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", t.cols), ", ") + ")"
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// insert inserts args (t.cols values per row) with as few statements as
// power-of-two chunk sizes allow: one statement per chunk costs the driver's
// per-call overhead once instead of once a row.
func (db *DB) insert(ctx context.Context, tx *sql.Tx, t insertTable, args []any) error {
	for rows := len(args) / t.cols; rows > 0; {
		n := maxInsertRows
		for n > rows {
			n /= 2
		}
		st := db.txStmt(ctx, tx, t.query(n))
		if _, err := st.ExecContext(ctx, args[:n*t.cols]...); err != nil {
			return wrapErr(err)
		}
		args = args[n*t.cols:]
		rows -= n
	}
	return nil
}
