package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
)

func credit(amount int) *crossbus.Event {
	e := crossbus.NewEvent("payout.credited", "/test")
	_ = crossbus.SetData(&e, map[string]int{"amount": amount})
	return &e
}

// TestTailingReaderNeverSkipsAnEvent appends from several handles (as
// several processes would, each with its own pool) with many writers each,
// while readers follow the log from the last position they saw. Were a
// lower position able to commit after a higher one was visible, a reader
// would skip it; each reader must see every position exactly once, in
// order.
func TestTailingReaderNeverSkipsAnEvent(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	url := serverURL(t)
	var handles []*postgres.DB
	for i := 0; i < 3; i++ {
		db, err := postgres.Open(ctx, url, postgres.Options{Schema: schema, NoListen: true})
		require.NoError(t, err)
		defer db.Close()
		handles = append(handles, db)
	}
	const writers, appends = 12, 40
	total := 0
	var mu sync.Mutex
	stop := make(chan struct{})
	type tail struct {
		seen []uint64
		err  error
	}
	tails := make([]chan tail, 3)
	for r := range tails {
		tails[r] = make(chan tail, 1)
		db := handles[r]
		go func() {
			var tl tail
			next := uint64(1)
			follow := func() bool {
				for rec, err := range db.Events().ReadAll(ctx, next) {
					if err != nil {
						tl.err = err
						return false
					}
					tl.seen = append(tl.seen, rec.Position)
					next = rec.Position + 1
				}
				return true
			}
			for {
				if !follow() {
					tails[r] <- tl
					return
				}
				select {
				case <-stop:
					follow()
					tails[r] <- tl
					return
				default:
				}
			}
		}()
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		db := handles[w%len(handles)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < appends; i++ {
				batch := 1 + (w+i)%5
				evs := make([]*crossbus.Event, batch)
				for j := range evs {
					evs[j] = credit(i)
				}
				// Half the writers share streams, so appends also queue on
				// stream locks.
				stream := fmt.Sprintf("w-%d", w%6)
				if _, err := db.Events().Append(ctx, stream, sourcing.Any, evs...); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				total += batch
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for r, ch := range tails {
		tl := <-ch
		require.NoError(t, tl.err)
		require.Len(t, tl.seen, total, "reader %d saw every event", r)
		for i, p := range tl.seen {
			if p != uint64(i+1) {
				t.Fatalf("reader %d: position %d at index %d: an event was skipped or repeated", r, p, i)
			}
		}
	}
	head, err := handles[0].Events().Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(total), head)
}

func TestOpenRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	_, err := postgres.Open(ctx, "", postgres.Options{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = postgres.Open(ctx, "postgres://u:secret@[::1", postgres.Options{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "parse DSN")
	assert.NotContains(t, err.Error(), "secret", "the password is not repeated")
	_, err = postgres.Open(ctx, "postgres://x@127.0.0.1:1/none", postgres.Options{MaxConns: -1})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	// Nothing listens on port 1.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = postgres.Open(cctx, "postgres://x@127.0.0.1:1/none?connect_timeout=2", postgres.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "postgres: connect to 127.0.0.1:1/none")
}

func TestOpenRefusesAWrongDatabaseOrUser(t *testing.T) {
	url := serverURL(t)
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	ctx := context.Background()
	bad := fmt.Sprintf("postgres://%s@%s:%d/no_such_database_here?sslmode=disable", cfg.User, cfg.Host, cfg.Port)
	_, err = postgres.Open(ctx, bad, postgres.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no_such_database_here")
	var pe interface{ SQLState() string }
	require.True(t, errors.As(err, &pe), "the driver's error is in the chain: %v", err)
	assert.Equal(t, "3D000", pe.SQLState())
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.NoError(t, err)
	_, err = db.Pool().Exec(ctx, `INSERT INTO `+table(db, "schema_migrations")+` (version, name) VALUES ($1, 'from-the-future')`, postgres.SchemaVersion()+1)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	for _, noMigrate := range []bool{false, true} {
		_, err = postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema, NoMigrate: noMigrate})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "newer than this package")
	}
}

func TestOpenRefusesAMissingTable(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.NoError(t, err)
	_, err = db.Pool().Exec(ctx, `DROP TABLE `+table(db, "outbox"))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "outbox missing")
}

func TestOpenWithNoMigrateNeedsTheSchema(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	_, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema, NoMigrate: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no crossbus tables")
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	db, err = postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema, NoMigrate: true})
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

// TestReplicasStartingTogetherMigrateOnce opens one schema from many
// goroutines at once, as replicas starting together would.
func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	const n = 8
	var wg sync.WaitGroup
	dbs := make([]*postgres.DB, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema, MaxConns: 2})
		}()
	}
	wg.Wait()
	for i := range dbs {
		require.NoError(t, errs[i])
		defer dbs[i].Close()
	}
	var versions int
	require.NoError(t, dbs[0].Pool().QueryRow(ctx, `SELECT COUNT(*) FROM `+table(dbs[0], "schema_migrations")).Scan(&versions))
	assert.Equal(t, postgres.SchemaVersion(), versions, "migrations ran once")
	_, err := dbs[3].Events().Append(ctx, "s", sourcing.Any, credit(1))
	require.NoError(t, err)
}

// TestChangedWakesOtherProcesses: a write through one handle wakes the
// Changed channel of another handle on the same schema (LISTEN/NOTIFY),
// and not that of a handle on another schema.
func TestChangedWakesOtherProcesses(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	a, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.NoError(t, err)
	defer a.Close()
	b, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.NoError(t, err)
	defer b.Close()
	other := openDB(t, postgres.Options{})

	wait := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(3 * time.Second):
			return false
		}
	}
	ch, otherCh := b.Changed(), other.Changed()
	_, err = a.Events().Append(ctx, "s", sourcing.Any, credit(1))
	require.NoError(t, err)
	assert.True(t, wait(ch), "an append wakes the other handle")
	select {
	case <-otherCh:
		t.Error("a handle on another schema was woken")
	case <-time.After(200 * time.Millisecond):
	}
	ch = b.Changed()
	require.NoError(t, a.WriteTx(ctx, func(tx pgx.Tx) error {
		return a.Events().Enqueue(ctx, tx, "notifications", "", credit(2))
	}))
	assert.True(t, wait(ch), "an enqueue wakes the other handle")
}

// TestWriteTxCommitsStateAndMessagesTogether: the application's rows, event
// appends and outbox messages of one WriteTx commit or roll back as one.
func TestWriteTxCommitsStateAndMessagesTogether(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, postgres.Options{Outbox: sourcing.ToTopic("payouts")})
	sellers := table(db, "sellers")
	_, err := db.Pool().Exec(ctx, `CREATE TABLE `+sellers+` (id text PRIMARY KEY, balance integer)`)
	require.NoError(t, err)
	count := func(q string) int {
		var n int
		require.NoError(t, db.Pool().QueryRow(ctx, q).Scan(&n))
		return n
	}
	outbox := `SELECT COUNT(*) FROM ` + table(db, "outbox")

	err = db.WriteTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+sellers+` VALUES ('s1', 10)`); err != nil {
			return err
		}
		if _, err := db.Events().AppendTx(ctx, tx, "seller-s1", sourcing.NoStream, credit(10)); err != nil {
			return err
		}
		return db.Events().Enqueue(ctx, tx, "notifications", "", credit(0))
	})
	require.NoError(t, err)
	assert.Equal(t, 1, count(`SELECT COUNT(*) FROM `+sellers))
	assert.Equal(t, 2, count(outbox))

	// A conflict inside the transaction rolls back the row and the message.
	err = db.WriteTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE `+sellers+` SET balance = 99 WHERE id = 's1'`); err != nil {
			return err
		}
		if err := db.Events().Enqueue(ctx, tx, "notifications", "", credit(0)); err != nil {
			return err
		}
		_, err := db.Events().AppendTx(ctx, tx, "seller-s1", sourcing.NoStream, credit(99))
		return err
	})
	require.ErrorIs(t, err, sourcing.ErrConflict)
	assert.Equal(t, 10, count(`SELECT balance FROM `+sellers+` WHERE id = 's1'`))
	assert.Equal(t, 2, count(outbox))
	v, err := db.Events().StreamVersion(ctx, "seller-s1")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), v)

	// A panic rolls back too.
	assert.Panics(t, func() {
		_ = db.WriteTx(ctx, func(tx pgx.Tx) error {
			_, _ = tx.Exec(ctx, `UPDATE `+sellers+` SET balance = 5 WHERE id = 's1'`)
			panic("bug")
		})
	})
	assert.Equal(t, 10, count(`SELECT balance FROM `+sellers+` WHERE id = 's1'`))

	// Enqueue refuses bad input.
	err = db.WriteTx(ctx, func(tx pgx.Tx) error { return db.Events().Enqueue(ctx, tx, "", "", credit(1)) })
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	bad := crossbus.NewEvent("", "/x")
	err = db.WriteTx(ctx, func(tx pgx.Tx) error { return db.Events().Enqueue(ctx, tx, "t", "", &bad) })
	require.ErrorIs(t, err, crossbus.ErrInvalidEvent)
}

// TestInboxHandlerJoinsWithTheStoresMethods: inside a transactional
// handler, Append, WriteTx and SaveCheckpoint given the handler's context
// join its transaction: they commit with it, or roll back with it.
func TestInboxHandlerJoinsWithTheStoresMethods(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, postgres.Options{Outbox: sourcing.ToTopic("ledger")})
	in := db.Idempotency()
	run := func(key string, fail bool) error {
		c, err := in.Begin(ctx, key, time.Minute)
		require.NoError(t, err)
		return in.CompleteInTx(ctx, key, c.Token, time.Hour, func(ctx context.Context) error {
			if _, err := db.Events().Append(ctx, "acct", sourcing.Any, credit(1)); err != nil {
				return err
			}
			if err := db.Events().SaveCheckpoint(ctx, "proj", 7); err != nil {
				return err
			}
			// A failing nested WriteTx undoes only its own writes.
			werr := db.WriteTx(ctx, func(tx pgx.Tx) error {
				if _, err := db.Events().AppendTx(ctx, tx, "acct", sourcing.Any, credit(2)); err != nil {
					return err
				}
				return errors.New("nested failure")
			})
			if werr == nil {
				return errors.New("the nested failure was lost")
			}
			if fail {
				return errors.New("handler failed")
			}
			return nil
		})
	}
	require.Error(t, run("k1", true))
	v, err := db.Events().StreamVersion(ctx, "acct")
	require.NoError(t, err)
	assert.Zero(t, v, "the failed handler's append rolled back")
	cp, err := db.Events().Checkpoint(ctx, "proj")
	require.NoError(t, err)
	assert.Zero(t, cp)

	require.NoError(t, run("k2", false))
	recs, err := sourcing.Collect(db.Events().ReadStream(ctx, "acct", 1))
	require.NoError(t, err)
	require.Len(t, recs, 1, "one append committed with the handler; the nested one rolled back")
	cp, err = db.Events().Checkpoint(ctx, "proj")
	require.NoError(t, err)
	assert.Equal(t, uint64(7), cp)
	msgs, err := db.Events().PendingOutbox(ctx, 10)
	require.NoError(t, err)
	assert.Len(t, msgs, 1)
}

func TestTxFromOutsideAHandlerIsFalse(t *testing.T) {
	tx, ok := postgres.TxFrom(context.Background())
	assert.False(t, ok)
	assert.Nil(t, tx)
}

func TestClosedDBErrorsWrapErrClosed(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: newSchema(t)})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = db.Events().Append(ctx, "s", sourcing.Any, credit(1))
	require.ErrorIs(t, err, crossbus.ErrClosed)
	_, err = db.Idempotency().Begin(ctx, "k", time.Minute)
	require.ErrorIs(t, err, crossbus.ErrClosed)
	_, err = sourcing.Collect(db.Events().ReadAll(ctx, 1))
	require.ErrorIs(t, err, crossbus.ErrClosed)
	assert.True(t, strings.HasPrefix(err.Error(), "postgres: read all"), "the operation is named: %v", err)
}

func TestIdempotencyPurgeDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	s := openDB(t, postgres.Options{}).Idempotency()
	_, err := s.Begin(ctx, "short", 10*time.Millisecond)
	require.NoError(t, err)
	_, err = s.Begin(ctx, "long", time.Hour)
	require.NoError(t, err)
	n, err := s.Purge(ctx, time.Now().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	c, err := s.Begin(ctx, "long", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimInProgress, c.Status)
}

func TestPurgeSentKeepsPending(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, postgres.Options{Outbox: sourcing.ToTopic("payouts")})
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

// TestReadAllPagesAcrossManyStreams reads more than a page across many
// streams (the stream name cache fills as pages arrive).
func TestReadAllPagesAcrossManyStreams(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, postgres.Options{})
	const n = 4500
	for i := 0; i < n; i += 50 {
		evs := make([]*crossbus.Event, 50)
		for j := range evs {
			evs[j] = credit(i + j)
		}
		_, err := db.Events().Append(ctx, fmt.Sprintf("s-%d", i/50), sourcing.Any, evs...)
		require.NoError(t, err)
	}
	recs, err := sourcing.Collect(db.Events().ReadAll(ctx, 1))
	require.NoError(t, err)
	require.Len(t, recs, n)
	assert.True(t, sort.SliceIsSorted(recs, func(i, j int) bool { return recs[i].Position < recs[j].Position }))
	for i, r := range recs {
		require.Equal(t, fmt.Sprintf("s-%d", i/50), r.Stream)
		require.Equal(t, uint64(i%50+1), r.Version)
	}
}
