package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/sqlite"
)

func TestReopenKeepsEveryStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	_, err = db.Events().Append(ctx, "s", sourcing.Any, credit(1), credit(2))
	require.NoError(t, err)
	require.NoError(t, db.Events().SaveSnapshot(ctx, sourcing.Snapshot{Stream: "s", Version: 2, Schema: "1", State: []byte(`3`)}))
	require.NoError(t, db.Events().SaveCheckpoint(ctx, "proj", 2))
	c, err := db.Idempotency().Begin(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, db.Idempotency().Complete(ctx, "k", c.Token, time.Hour))
	require.NoError(t, db.Close())

	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	defer db.Close()
	v, err := db.Events().StreamVersion(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), v)
	snap, ok, err := db.Events().LoadSnapshot(ctx, "s")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "3", string(snap.State))
	cp, err := db.Events().Checkpoint(ctx, "proj")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), cp)
	c, err = db.Idempotency().Begin(ctx, "k", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimCompleted, c.Status)
	var versions int
	require.NoError(t, db.SQL().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&versions))
	assert.Equal(t, sqlite.SchemaVersion(), versions, "migrations ran once")
	var mode string
	require.NoError(t, db.SQL().QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	assert.Equal(t, "wal", mode)
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "future.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	_, err = db.SQL().Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from-the-future', 0)`, sqlite.SchemaVersion()+1)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = sqlite.Open(ctx, path, sqlite.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "newer than this package")
}

func TestOpenValidatesOptions(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		path string
		opts sqlite.Options
	}{
		"EmptyPath":       {"", sqlite.Options{}},
		"Memory":          {":memory:", sqlite.Options{}},
		"NegativeBusy":    {filepath.Join(t.TempDir(), "a.db"), sqlite.Options{BusyTimeout: -1}},
		"NegativeReaders": {filepath.Join(t.TempDir(), "b.db"), sqlite.Options{ReadConns: -1}},
		"MissingDir":      {filepath.Join(t.TempDir(), "absent", "c.db"), sqlite.Options{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sqlite.Open(ctx, tc.path, tc.opts)
			require.ErrorIs(t, err, crossbus.ErrInvalidOption)
			if name == "MissingDir" {
				require.ErrorContains(t, err, "directory of "+tc.path+" does not exist")
			}
		})
	}
}

// TestTwoHandlesShareOneFile opens the file twice, as two processes would:
// each handle has its own write connection, so their transactions contend
// for SQLite's lock (busy handling) and the event store's guarantees must
// still hold across them.
func TestTwoHandlesShareOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	defer a.Close()
	b, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	defer b.Close()

	const perWriter = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[uint64]int{}
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		db := a
		if w%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if _, err := db.Events().Append(ctx, fmt.Sprintf("w-%d", w), sourcing.Any, credit(i)); err != nil {
					errs <- err
					return
				}
				v, err := db.Events().StreamVersion(ctx, "contended")
				if err != nil {
					errs <- err
					return
				}
				res, err := db.Events().Append(ctx, "contended", sourcing.Exactly(v), credit(i))
				if errors.Is(err, sourcing.ErrConflict) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				wins[res.Version]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	recs, err := sourcing.Collect(b.Events().ReadAll(ctx, 1))
	require.NoError(t, err)
	for i, r := range recs {
		require.Equal(t, uint64(i+1), r.Position, "gap-free across handles")
	}
	cont, err := sourcing.Collect(a.Events().ReadStream(ctx, "contended", 1))
	require.NoError(t, err)
	require.Len(t, cont, len(wins))
	for v, n := range wins {
		assert.Equal(t, 1, n, "version %d won once", v)
	}
	assert.Equal(t, 8*perWriter+len(cont), len(recs))
}

func TestIdempotencyPurgeDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqlite.Options{})
	s := db.Idempotency()
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

func TestClosedDBErrorsWrapErrClosed(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"), sqlite.Options{})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = db.Events().Append(ctx, "s", sourcing.Any, credit(1))
	require.ErrorIs(t, err, crossbus.ErrClosed)
	_, err = db.Idempotency().Begin(ctx, "k", time.Minute)
	require.ErrorIs(t, err, crossbus.ErrClosed)
	_, err = sourcing.Collect(db.Events().ReadAll(ctx, 1))
	require.ErrorIs(t, err, crossbus.ErrClosed)
}
