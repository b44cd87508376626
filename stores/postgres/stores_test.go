package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/sequence"
	"github.com/crossbus/crossbus/stores/postgres"
	"github.com/crossbus/crossbus/stores/storetest"
)

const urlEnv = "CROSSBUS_POSTGRES_URL"

var (
	serverOnce sync.Once
	serverErr  error
	schemaSeq  atomic.Int64
)

// serverURL returns the test server's URL, or skips the test (printing
// why) when none is configured or it cannot be reached.
func serverURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(urlEnv)
	if url == "" {
		t.Skip(urlEnv + " is not set: no PostgreSQL server to test against (scripts/deps/postgres.sh starts one; make test runs it)")
	}
	serverOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			serverErr = err
			return
		}
		serverErr = conn.Ping(ctx)
		_ = conn.Close(ctx)
	})
	if serverErr != nil {
		t.Skipf("PostgreSQL at %s is unreachable, skipping: %v", urlEnv, serverErr)
	}
	return url
}

// newSchema returns a fresh schema name for a test and drops the schema
// when the test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	url := serverURL(t)
	name := fmt.Sprintf("t_%d_%d_%s", os.Getpid(), schemaSeq.Add(1), strings.ToLower(claimtoken.New()[:6]))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	})
	return name
}

// openDB opens a store in a fresh schema of the test server.
func openDB(t testing.TB, opts postgres.Options) *postgres.DB {
	t.Helper()
	if opts.Schema == "" {
		opts.Schema = newSchema(t)
	}
	db, err := postgres.Open(context.Background(), serverURL(t), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// table qualifies an application table name with the DB's schema.
func table(db *postgres.DB, name string) string {
	return pgx.Identifier{db.Schema(), name}.Sanitize()
}

func TestIdempotencyStore(t *testing.T) {
	serverURL(t)
	storetest.TestIdempotencyStore(t, func(t *testing.T) crossbus.IdempotencyStore { return openDB(t, postgres.Options{}).Idempotency() })
}

func TestInboxStore(t *testing.T) {
	serverURL(t)
	storetest.TestInboxStore(t, func(t *testing.T) storetest.Inbox {
		return newInbox(t, openDB(t, postgres.Options{}))
	})
}

func TestEventStore(t *testing.T) {
	serverURL(t)
	storetest.TestEventStore(t, func(t *testing.T) sourcing.Store { return openDB(t, postgres.Options{}).Events() })
}

func TestSnapshotStore(t *testing.T) {
	serverURL(t)
	storetest.TestSnapshotStore(t, func(t *testing.T) sourcing.SnapshotStore { return openDB(t, postgres.Options{}).Events() })
}

func TestCheckpointStore(t *testing.T) {
	serverURL(t)
	storetest.TestCheckpointStore(t, func(t *testing.T) sourcing.CheckpointStore { return openDB(t, postgres.Options{}).Events() })
}

func TestOutbox(t *testing.T) {
	serverURL(t)
	storetest.TestOutbox(t, func(t *testing.T, route sourcing.OutboxRoute) storetest.OutboxStore {
		return openDB(t, postgres.Options{Outbox: route}).Events()
	})
}

func TestChainStore(t *testing.T) {
	serverURL(t)
	storetest.TestChainStore(t, func(t *testing.T) chain.Store { return openDB(t, postgres.Options{}).Chains() })
}

func TestLeaderStore(t *testing.T) {
	serverURL(t)
	storetest.TestLeaderStore(t, func(t *testing.T) leader.Store { return openDB(t, postgres.Options{}).Leases() })
}

func TestSequenceStore(t *testing.T) {
	serverURL(t)
	storetest.TestSequenceStore(t, func(t *testing.T) sequence.Store { return openDB(t, postgres.Options{}).Sequences() })
}

// newInbox creates an effects table and returns the inbox suite's view of
// it: Apply inserts a row through the inbox transaction (no unique
// constraint, so a double effect shows as two rows).
func newInbox(t *testing.T, db *postgres.DB) storetest.Inbox {
	t.Helper()
	effects := table(db, "effects")
	_, err := db.Pool().Exec(context.Background(), `CREATE TABLE `+effects+` (key text NOT NULL)`)
	require.NoError(t, err)
	return storetest.Inbox{
		Store: db.Idempotency(),
		Apply: func(ctx context.Context, key string) error {
			tx, ok := postgres.TxFrom(ctx)
			if !ok {
				return errors.New("no inbox transaction in the context")
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+effects+` (key) VALUES ($1)`, key)
			return err
		},
		Effects: func(ctx context.Context, key string) (int, error) {
			var n int
			err := db.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM `+effects+` WHERE key = $1`, key).Scan(&n)
			return n, err
		},
	}
}
