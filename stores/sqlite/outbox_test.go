package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	_ "github.com/crossbus/crossbus/providers/memory"
	"github.com/crossbus/crossbus/stores/sqlite"
)

const crashEnv = "CROSSBUS_SQLITE_CRASH_DB"

// TestCrashHelper is not a test on its own: TestOutboxCrashBetweenCommitAndPublish
// runs the test binary again with crashEnv set, and this function then
// commits state and outbox messages and kills its process before any relay
// runs.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestOutboxCrashBetweenCommitAndPublish; runs only when " + crashEnv + " is set")
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path, sqlite.Options{Outbox: sourcing.ToTopic("payouts")})
	if err != nil {
		os.Exit(2)
	}
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT)`); err != nil {
		os.Exit(2)
	}
	// A state change and its event in one transaction.
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders VALUES ('o-1', 'paid')`); err != nil {
			return err
		}
		e := crossbus.NewEvent("order.paid", "/shop")
		e.SetID("order-paid-o-1")
		return db.Events().Enqueue(ctx, tx, "orders", "order-o-1", &e)
	})
	if err != nil {
		os.Exit(2)
	}
	// Event-store appends enqueue through the route.
	for i := 0; i < 3; i++ {
		e := crossbus.NewEvent("payout.credited", "/shop")
		e.SetID("credit-" + string(rune('a'+i)))
		if _, err := db.Events().Append(ctx, "seller-1", sourcing.Any, &e); err != nil {
			os.Exit(2)
		}
	}
	os.Exit(3) // crash: no Close, no relay
}

// TestOutboxCrashBetweenCommitAndPublish kills a process right after it
// committed state changes with outbox messages, then starts over on the same
// file: the relay of the new process publishes every message, in stream
// order, and marks them sent.
func TestOutboxCrashBetweenCommitAndPublish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	err := cmd.Run()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "helper should exit with status 3, got %v", err)
	require.Equal(t, 3, ee.ExitCode(), "helper failed before its crash point")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := sqlite.Open(ctx, path, sqlite.Options{Outbox: sourcing.ToTopic("payouts")})
	require.NoError(t, err)
	defer db.Close()
	var status string
	require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT status FROM orders WHERE id = 'o-1'`).Scan(&status))
	assert.Equal(t, "paid", status, "the state change survived the crash")

	bus, err := crossbus.Open(ctx, "mem://")
	require.NoError(t, err)
	defer bus.Close(context.Background())
	got := make(chan *crossbus.Event, 10)
	collect := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error { got <- e; return nil })
	for _, topic := range []string{"orders", "payouts"} {
		s, err := bus.Subscribe(ctx, topic, "audit", collect)
		require.NoError(t, err)
		defer s.Close(context.Background())
	}
	relay := &sourcing.Relay{Outbox: db.Events(), Bus: bus}
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()

	var ids []string
	for len(ids) < 4 {
		select {
		case e := <-got:
			ids = append(ids, e.ID())
		case <-time.After(10 * time.Second):
			t.Fatalf("after restart only %v were published", ids)
		}
	}
	cancel()
	require.NoError(t, <-done)
	assert.ElementsMatch(t, []string{"order-paid-o-1", "credit-a", "credit-b", "credit-c"}, ids)
	var credits []string
	for _, id := range ids {
		if id != "order-paid-o-1" {
			credits = append(credits, id)
		}
	}
	assert.Equal(t, []string{"credit-a", "credit-b", "credit-c"}, credits, "in stream order")
	pending, err := db.Events().PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	assert.Empty(t, pending, "every message is marked sent")
	var sent int
	require.NoError(t, db.SQL().QueryRow(`SELECT COUNT(*) FROM outbox WHERE sent IS NOT NULL`).Scan(&sent))
	assert.Equal(t, 4, sent)
}

// failingMark is an outbox whose MarkSent fails while fail is set: the crash
// between publishing and marking.
type failingMark struct {
	*sqlite.EventStore
	mu   sync.Mutex
	fail bool
}

func (f *failingMark) MarkSent(ctx context.Context, ids ...uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("disk gone")
	}
	return f.EventStore.MarkSent(ctx, ids...)
}

// TestOutboxPublishedButNotMarkedIsPublishedAgain shows at-least-once: when
// marking fails after publishing, the next flush publishes the same events
// (same ids) again, and an idempotent consumer handles each once.
func TestOutboxPublishedButNotMarkedIsPublishedAgain(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{Outbox: sourcing.ToTopic("payouts")})
	bus, err := crossbus.Open(ctx, "mem://")
	require.NoError(t, err)
	defer bus.Close(ctx)

	var mu sync.Mutex
	deliveries, handled := 0, 0
	seen := make(chan struct{}, 10)
	counter := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		handled++
		mu.Unlock()
		return nil
	})
	countAll := func(next crossbus.Handler) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			mu.Lock()
			deliveries++
			mu.Unlock()
			defer func() { seen <- struct{}{} }()
			return next.Handle(ctx, e)
		})
	}
	idem, err := crossbus.Idempotent(db.Idempotency(), crossbus.IdempotencyOptions{})
	require.NoError(t, err)
	sub, err := bus.Subscribe(ctx, "payouts", "ledger", crossbus.Chain(counter, countAll, idem))
	require.NoError(t, err)
	defer sub.Close(ctx)

	_, err = db.Events().Append(ctx, "seller-1", sourcing.Any, credit(1), credit(2))
	require.NoError(t, err)
	ob := &failingMark{EventStore: db.Events(), fail: true}
	relay := &sourcing.Relay{Outbox: ob, Bus: bus}
	n, err := relay.Flush(ctx)
	require.Error(t, err)
	assert.Equal(t, 2, n, "both events were published")
	ob.mu.Lock()
	ob.fail = false
	ob.mu.Unlock()
	n, err = relay.Flush(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "and published again, since they were not marked")
	for i := 0; i < 4; i++ {
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d deliveries", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 4, deliveries)
	assert.Equal(t, 2, handled, "the idempotent consumer handled each event once")
}

// TestWriteTxCommitsStateAndMessagesTogether: the application's rows, event
// appends and outbox messages of one WriteTx commit or roll back as one.
func TestWriteTxCommitsStateAndMessagesTogether(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{Outbox: sourcing.ToTopic("payouts")})
	_, err := db.SQL().ExecContext(ctx, `CREATE TABLE sellers (id TEXT PRIMARY KEY, balance INTEGER)`)
	require.NoError(t, err)
	count := func(q string) int {
		var n int
		require.NoError(t, db.SQL().QueryRowContext(ctx, q).Scan(&n))
		return n
	}

	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sellers VALUES ('s1', 10)`); err != nil {
			return err
		}
		if _, err := db.Events().AppendTx(ctx, tx, "seller-s1", sourcing.NoStream, credit(10)); err != nil {
			return err
		}
		return db.Events().Enqueue(ctx, tx, "notifications", "", credit(0))
	})
	require.NoError(t, err)
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM sellers`))
	assert.Equal(t, 2, count(`SELECT COUNT(*) FROM outbox`))

	// A conflict inside the transaction rolls back the row and the message.
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE sellers SET balance = 99 WHERE id = 's1'`); err != nil {
			return err
		}
		if err := db.Events().Enqueue(ctx, tx, "notifications", "", credit(0)); err != nil {
			return err
		}
		_, err := db.Events().AppendTx(ctx, tx, "seller-s1", sourcing.NoStream, credit(99))
		return err
	})
	require.ErrorIs(t, err, sourcing.ErrConflict)
	assert.Equal(t, 10, count(`SELECT balance FROM sellers WHERE id = 's1'`))
	assert.Equal(t, 2, count(`SELECT COUNT(*) FROM outbox`))
	v, err := db.Events().StreamVersion(ctx, "seller-s1")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), v)

	// A panic rolls back too.
	assert.Panics(t, func() {
		_ = db.WriteTx(ctx, func(tx *sql.Tx) error {
			_, _ = tx.ExecContext(ctx, `UPDATE sellers SET balance = 5 WHERE id = 's1'`)
			panic("bug")
		})
	})
	assert.Equal(t, 10, count(`SELECT balance FROM sellers WHERE id = 's1'`))

	// Enqueue refuses bad input.
	err = db.WriteTx(ctx, func(tx *sql.Tx) error { return db.Events().Enqueue(ctx, tx, "", "", credit(1)) })
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	bad := crossbus.NewEvent("", "/x")
	err = db.WriteTx(ctx, func(tx *sql.Tx) error { return db.Events().Enqueue(ctx, tx, "t", "", &bad) })
	require.ErrorIs(t, err, crossbus.ErrInvalidEvent)
}

func TestPurgeSentKeepsPending(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{Outbox: sourcing.ToTopic("payouts")})
	_, err := db.Events().Append(ctx, "s", sourcing.Any, credit(1), credit(2), credit(3))
	require.NoError(t, err)
	msgs, err := db.Events().PendingOutbox(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, db.Events().MarkSent(ctx, msgs[0].ID, msgs[1].ID))
	n, err := db.Events().PurgeSent(ctx, time.Now().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	left, err := db.Events().PendingOutbox(ctx, 10)
	require.NoError(t, err)
	assert.Len(t, left, 1)
}

func credit(amount int) *crossbus.Event {
	e := crossbus.NewEvent("payout.credited", "/test")
	_ = crossbus.SetData(&e, map[string]int{"amount": amount})
	return &e
}
