package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// DefaultSchema is the schema the store's tables live in unless
// Options.Schema names another.
const DefaultSchema = "crossbus"

// notifyChannel is the LISTEN/NOTIFY channel; the payload is the schema,
// so stores of several schemas in one database tell their own writes apart.
const notifyChannel = "crossbus_changed"

// Options configure a DB. The zero value is valid.
type Options struct {
	// Schema holds the store's tables (default DefaultSchema). Open creates
	// it when missing. Stores in distinct schemas of one database are
	// independent.
	Schema string
	// Outbox, when set, enqueues every appended event it routes to a topic
	// in the transaction of the append (see sourcing.Relay).
	Outbox sourcing.OutboxRoute
	// MaxConns bounds the pool's connections (default 10). A transactional
	// handler holds one for its duration.
	MaxConns int32
	// PurgeInterval is how often expired idempotency records are deleted
	// (default 1m).
	PurgeInterval time.Duration
	// NoMigrate makes Open check the schema instead of creating or
	// upgrading it, for a role without the right to change it: Open fails
	// unless the schema is at this package's version.
	NoMigrate bool
	// NoListen turns off LISTEN/NOTIFY: Changed then fires only for writes
	// of this process, and the relay sees other processes' writes by
	// polling.
	NoListen bool
	// Logger receives what is not returned to a caller: listener
	// reconnections, purge failures (default: discarded).
	Logger *slog.Logger
}

// DB is a PostgreSQL database (one schema of it) holding every crossbus
// store. It is safe for concurrent use; close it with Close.
type DB struct {
	opts   Options
	schema string // quoted identifier
	pool   *pgxpool.Pool
	log    *slog.Logger
	closed atomic.Bool

	queries sync.Map // query with § -> query with the schema

	mu      sync.Mutex
	changed chan struct{}

	names sync.Map // stream id (int64) -> name

	stopListen context.CancelFunc
	listening  chan struct{} // closed when the listener stopped

	idem     *IdempotencyStore
	events   *EventStore
	chains   *ChainStore
	leases   *LeaderStore
	sequence *SequenceStore
}

// Open connects to the database that dsn names (a postgres:// URL or a
// key=value connection string, as pgx takes it), brings the schema up to
// date (several replicas may do so at once: migrations run under an
// advisory lock) and returns the DB. A DSN that cannot be parsed, a server
// that cannot be reached, and a schema that is newer than this package or
// misses tables are refused with an error that says which.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%w: postgres: DSN is empty", crossbus.ErrInvalidOption)
	}
	if opts.MaxConns < 0 || opts.PurgeInterval < 0 {
		return nil, fmt.Errorf("%w: postgres: MaxConns and PurgeInterval must not be negative", crossbus.ErrInvalidOption)
	}
	opts.Schema = cmp.Or(opts.Schema, DefaultSchema)
	if len(opts.Schema) > 63 {
		return nil, fmt.Errorf("%w: postgres: schema name %q is over 63 bytes", crossbus.ErrInvalidOption, opts.Schema)
	}
	opts.MaxConns = cmp.Or(opts.MaxConns, 10)
	opts.PurgeInterval = cmp.Or(opts.PurgeInterval, time.Minute)
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors leave the password out.
		return nil, fmt.Errorf("%w: postgres: parse DSN: %w", crossbus.ErrInvalidOption, err)
	}
	cfg.MaxConns = opts.MaxConns
	cfg.ConnConfig.RuntimeParams["application_name"] = "crossbus"
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", where, err)
	}
	db := &DB{opts: opts, schema: pgx.Identifier{opts.Schema}.Sanitize(), pool: pool, log: opts.Logger,
		changed: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s, schema %q: %w", where, opts.Schema, err)
	}
	db.idem = &IdempotencyStore{db: db}
	db.events = &EventStore{db: db}
	db.chains = &ChainStore{db: db}
	db.leases = &LeaderStore{db: db}
	db.sequence = &SequenceStore{db: db}
	if !opts.NoListen {
		db.listen(cfg.ConnConfig)
	}
	return db, nil
}

// Schema returns the schema the store's tables live in.
func (db *DB) Schema() string { return db.opts.Schema }

// Idempotency returns the idempotency store (crossbus.IdempotencyStore and
// crossbus.InboxStore).
func (db *DB) Idempotency() *IdempotencyStore { return db.idem }

// Events returns the event store, which is also the snapshot store, the
// checkpoint store and the outbox.
func (db *DB) Events() *EventStore { return db.events }

// Chains returns the chain state store (chain.Store).
func (db *DB) Chains() *ChainStore { return db.chains }

// Leases returns the leader election store (leader.Store).
func (db *DB) Leases() *LeaderStore { return db.leases }

// Sequences returns the sequence store (sequence.Store).
func (db *DB) Sequences() *SequenceStore { return db.sequence }

// Pool returns the connection pool, for the application's own tables.
// Inside a transactional handler, write through TxFrom(ctx) instead, so the
// writes commit with the event.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close stops the listener and closes the pool. It waits for connections
// in use to be returned.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	if db.stopListen != nil {
		db.stopListen()
		<-db.listening
	}
	db.pool.Close()
	return nil
}

// Changed implements sourcing.Notifier: the channel is closed at the next
// commit that appends events or enqueues outbox messages, in this process
// or, through LISTEN/NOTIFY, in any process using the schema.
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

// q returns query with § replaced by the schema's quoted name and a dot.
func (db *DB) q(query string) string {
	if v, ok := db.queries.Load(query); ok {
		return v.(string)
	}
	s := strings.ReplaceAll(query, "§", db.schema+".")
	db.queries.Store(query, s)
	return s
}

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// conn returns the inbox transaction ctx carries for db, or the pool.
func (db *DB) conn(ctx context.Context) querier {
	if tx := db.joined(ctx); tx != nil {
		return tx
	}
	return db.pool
}

// WriteTx runs fn in a transaction and commits when fn returns nil.
// Everything fn does through tx — the application's own statements,
// EventStore.AppendTx, EventStore.Enqueue, SaveCheckpointTx — commits or
// rolls back together, which is what makes the outbox transactional. A
// panic in fn rolls back and is re-raised.
//
// Inside a transactional handler (see the package documentation), with the
// handler's context, WriteTx joins the handler's inbox transaction: fn runs
// in a savepoint of it, an error from fn undoes only fn's writes, and what
// fn wrote commits when the handler's transaction commits.
func (db *DB) WriteTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := db.writeTx(ctx, "write transaction", fn); err != nil {
		return err
	}
	if db.joined(ctx) == nil {
		db.notify()
	}
	return nil
}

// writeTx runs fn in a transaction, or in a savepoint of the inbox
// transaction ctx carries. op names the operation in errors.
func (db *DB) writeTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) (err error) {
	var tx pgx.Tx
	if outer := db.joined(ctx); outer != nil {
		tx, err = outer.Begin(ctx) // a savepoint
	} else {
		tx, err = db.pool.Begin(ctx)
	}
	if err != nil {
		return db.wrap(op+": begin", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return db.wrap(op+": commit", err)
	}
	return nil
}

// wrap names the operation and keeps the driver's error in the chain;
// errors of a closed DB also match crossbus.ErrClosed.
func (db *DB) wrap(op string, err error) error {
	if db.closed.Load() || errors.Is(err, errPoolClosed) || err != nil && strings.Contains(err.Error(), "closed pool") {
		return fmt.Errorf("postgres: %s: %w: %w", op, crossbus.ErrClosed, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

var errPoolClosed = errors.New("closed pool")

// listen follows the notify channel on a connection of its own, and
// reconnects after a failure, so Changed fires for every process's writes.
func (db *DB) listen(cfg *pgx.ConnConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	db.stopListen = cancel
	db.listening = make(chan struct{})
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(db.listening)
		delay := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := db.follow(ctx, cfg.Copy(), func() { once.Do(func() { close(ready) }) })
			once.Do(func() { close(ready) })
			if ctx.Err() != nil {
				return
			}
			db.log.Warn("postgres: LISTEN connection failed; reconnecting", "error", err, "in", delay)
			// Writes may have been missed meanwhile: wake the waiters.
			db.notify()
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
	}()
	select { // the first LISTEN is in place before Open returns, or failed
	case <-ready:
	case <-time.After(5 * time.Second):
	}
}

func (db *DB) follow(ctx context.Context, cfg *pgx.ConnConfig, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == db.opts.Schema {
			db.notify()
		}
	}
}
