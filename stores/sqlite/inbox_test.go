package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/sqlite"
	"github.com/crossbus/crossbus/stores/storetest"
)

// newInbox creates an effects table in db and returns the inbox suite's
// view of it: Apply inserts a row through the inbox transaction (no unique
// constraint, so a double effect shows as two rows).
func newInbox(t *testing.T, db *sqlite.DB) storetest.Inbox {
	t.Helper()
	_, err := db.SQL().Exec(`CREATE TABLE effects (key TEXT NOT NULL)`)
	require.NoError(t, err)
	return storetest.Inbox{
		Store: db.Idempotency(),
		Apply: func(ctx context.Context, key string) error {
			tx, ok := sqlite.TxFrom(ctx)
			if !ok {
				return errors.New("no inbox transaction in the context")
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (key) VALUES (?)`, key)
			return err
		},
		Effects: func(ctx context.Context, key string) (int, error) {
			return countRows(ctx, db, `SELECT COUNT(*) FROM effects WHERE key = ?`, key)
		},
	}
}

func countRows(ctx context.Context, db *sqlite.DB, query string, args ...any) (int, error) {
	var n int
	err := db.SQL().QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// inTx runs CompleteInTx for a fresh claim of key and fails the test if it
// does not return within 10s (a deadlock on the single write connection).
func inTx(t *testing.T, db *sqlite.DB, key string, fn func(ctx context.Context) error) error {
	t.Helper()
	ctx := context.Background()
	c, err := db.Idempotency().Begin(ctx, key, time.Minute)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c.Status)
	done := make(chan error, 1)
	go func() { done <- db.Idempotency().CompleteInTx(ctx, key, c.Token, time.Hour, fn) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("CompleteInTx(%q) did not return within 10s: deadlock", key)
		return nil
	}
}

func TestTxFromOutsideAHandlerIsFalse(t *testing.T) {
	tx, ok := sqlite.TxFrom(context.Background())
	assert.False(t, ok)
	assert.Nil(t, tx)
}

// TestWriteTxInsideInboxJoinsTheHandlersTransaction: DB methods that write,
// given the handler's context, join the inbox transaction instead of
// waiting for the write connection it holds; WriteTx runs in a savepoint,
// so its own failure undoes only its writes.
func TestWriteTxInsideInboxJoinsTheHandlersTransaction(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{Outbox: sourcing.ToTopic("ledger")})
	in := newInbox(t, db)
	count := func(q string, args ...any) int {
		n, err := countRows(ctx, db, q, args...)
		require.NoError(t, err)
		return n
	}
	insert := func(key string) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (key) VALUES (?)`, key)
			return err
		}
	}
	nestedFailed := errors.New("nested write failed")

	err := inTx(t, db, "commit", func(ctx context.Context) error {
		if err := in.Apply(ctx, "handler"); err != nil {
			return err
		}
		if err := db.WriteTx(ctx, insert("nested")); err != nil {
			return err
		}
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			if err := insert("undone")(tx); err != nil {
				return err
			}
			return nestedFailed
		})
		if !errors.Is(err, nestedFailed) {
			return errors.New("the failing nested WriteTx did not return its error")
		}
		if _, err := db.Events().Append(ctx, "acct-1", sourcing.Any, credit(5)); err != nil {
			return err
		}
		_, err = db.Idempotency().Begin(ctx, "claimed-inside", time.Minute)
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM effects WHERE key = 'handler'`))
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM effects WHERE key = 'nested'`), "the nested WriteTx committed with the handler")
	assert.Equal(t, 0, count(`SELECT COUNT(*) FROM effects WHERE key = 'undone'`), "the failed nested WriteTx was undone")
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM events`))
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM outbox`), "the append's outbox message committed with the handler")
	c, err := db.Idempotency().Begin(ctx, "claimed-inside", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimInProgress, c.Status)

	// A handler that fails takes every joined write with it.
	handlerFailed := errors.New("handler failed")
	err = inTx(t, db, "rollback", func(ctx context.Context) error {
		if err := db.WriteTx(ctx, insert("rolled-back")); err != nil {
			return err
		}
		if _, err := db.Events().Append(ctx, "acct-2", sourcing.Any, credit(7)); err != nil {
			return err
		}
		return handlerFailed
	})
	require.ErrorIs(t, err, handlerFailed)
	assert.Equal(t, 0, count(`SELECT COUNT(*) FROM effects WHERE key = 'rolled-back'`))
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM events`))
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM outbox`))

	// A panic inside a nested WriteTx rolls the whole handler back, and the
	// write connection is free afterwards.
	assert.Panics(t, func() {
		_ = db.Idempotency().CompleteInTx(ctx, "panics", mustBegin(t, db, "panics"), time.Hour, func(ctx context.Context) error {
			return db.WriteTx(ctx, func(tx *sql.Tx) error {
				_ = insert("panicked")(tx)
				panic("bug")
			})
		})
	})
	assert.Equal(t, 0, count(`SELECT COUNT(*) FROM effects WHERE key = 'panicked'`))
	require.NoError(t, db.WriteTx(ctx, insert("after")))
}

func mustBegin(t *testing.T, db *sqlite.DB, key string) string {
	t.Helper()
	c, err := db.Idempotency().Begin(context.Background(), key, time.Minute)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c.Status)
	return c.Token
}

// TestRenewDuringInboxTransactionReturnsAtOnce: the route renews the claim
// while the handler runs; the renewal must not wait for the write lock the
// handler's own transaction holds.
func TestRenewDuringInboxTransactionReturnsAtOnce(t *testing.T) {
	db := openDB(t, sqlite.Options{})
	in := newInbox(t, db)
	tok := mustBegin(t, db, "k")
	var renewErr error
	var took time.Duration
	err := db.Idempotency().CompleteInTx(context.Background(), "k", tok, time.Hour, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		renewErr = db.Idempotency().Renew(rctx, "k", tok, time.Minute)
		took = time.Since(start)
		return in.Apply(ctx, "k")
	})
	require.NoError(t, err)
	assert.NoError(t, renewErr)
	assert.Less(t, took, time.Second, "Renew did not wait for the handler's transaction")
	assert.ErrorIs(t, db.Idempotency().Renew(context.Background(), "k", tok, time.Minute), crossbus.ErrLeaseLost, "after the commit the claim is completed")
}

// TestInboxHandlerOutlivingItsLeaseCommits: the transaction took the write
// lock while the claim was live, so no one could claim the key since; a
// handler slower than its lease still commits.
func TestInboxHandlerOutlivingItsLeaseCommits(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{})
	in := newInbox(t, db)
	c, err := db.Idempotency().Begin(ctx, "slow", 150*time.Millisecond)
	require.NoError(t, err)
	err = db.Idempotency().CompleteInTx(ctx, "slow", c.Token, time.Hour, func(ctx context.Context) error {
		time.Sleep(300 * time.Millisecond)
		return in.Apply(ctx, "slow")
	})
	require.NoError(t, err)
	n, err := in.Effects(ctx, "slow")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	c, err = db.Idempotency().Begin(ctx, "slow", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimCompleted, c.Status)
}

// TestInboxCancelledContextRollsBack: a handler whose context ends (the
// subscription shutting down) commits nothing, and the claim stays for
// release.
func TestInboxCancelledContextRollsBack(t *testing.T) {
	db := openDB(t, sqlite.Options{})
	in := newInbox(t, db)
	tok := mustBegin(t, db, "k")
	ctx, cancel := context.WithCancel(context.Background())
	err := db.Idempotency().CompleteInTx(ctx, "k", tok, time.Hour, func(ctx context.Context) error {
		_ = in.Apply(ctx, "k")
		cancel()
		time.Sleep(50 * time.Millisecond) // database/sql rolls back on its own goroutine
		return nil
	})
	require.Error(t, err)
	n, err := in.Effects(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	require.NoError(t, db.Idempotency().Release(context.Background(), "k", tok))
	require.NoError(t, inTx(t, db, "k", func(ctx context.Context) error { return in.Apply(ctx, "k") }))
}

// countingInbox counts Begins that found the event completed.
type countingInbox struct {
	*sqlite.IdempotencyStore
	completed atomic.Int64
}

func (c *countingInbox) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	cl, err := c.IdempotencyStore.Begin(ctx, key, lease)
	if err == nil && cl.Status == crossbus.ClaimCompleted {
		c.completed.Add(1)
	}
	return cl, err
}

// TestTransactionalRoute runs a route with IdempotencyOptions.Transactional:
// a failed attempt's write rolls back, the retry's commits with the
// completion, and a duplicate is acked without running the handler.
func TestTransactionalRoute(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{})
	in := newInbox(t, db)
	bus, err := crossbus.Open(ctx, "mem://")
	require.NoError(t, err)
	defer bus.Close(ctx)

	store := &countingInbox{IdempotencyStore: db.Idempotency()}
	var runs atomic.Int64
	handler := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if err := in.Apply(ctx, e.ID()); err != nil {
			return crossbus.Permanent(err)
		}
		if runs.Add(1) == 1 {
			return errors.New("first attempt fails after its write")
		}
		return nil
	})
	sub, err := bus.Subscribe(ctx, "payments", "ledger", handler,
		crossbus.WithIdempotency(store, crossbus.IdempotencyOptions{Transactional: true, Lease: time.Second}),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Multiplier: 1}))
	require.NoError(t, err)
	defer sub.Close(ctx)

	e := crossbus.NewEvent("payment.received", "/bank")
	e.SetID("pay-1")
	require.NoError(t, bus.Publish(ctx, "payments", &e))
	// The effect and the completion commit together: once the one is
	// visible, so is the other.
	require.Eventually(t, func() bool { return mustCount(t, in, e.ID()) > 0 }, 10*time.Second, 10*time.Millisecond, "the retry committed")
	assert.Equal(t, int64(2), runs.Load(), "one failed attempt, one that committed")
	dup := e.Clone()
	require.NoError(t, bus.Publish(ctx, "payments", &dup))
	require.Eventually(t, func() bool { return store.completed.Load() == 1 }, 10*time.Second, 10*time.Millisecond, "the duplicate found the event completed")
	assert.Equal(t, int64(2), runs.Load(), "the duplicate did not run the handler")
	assert.Equal(t, 1, mustCount(t, in, e.ID()), "one effect: the failed attempt's write rolled back")
}

func mustCount(t *testing.T, in storetest.Inbox, key string) int {
	t.Helper()
	n, err := in.Effects(context.Background(), key)
	require.NoError(t, err)
	return n
}
