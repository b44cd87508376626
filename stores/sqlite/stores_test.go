package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/sqlite"
	"github.com/crossbus/crossbus/stores/storetest"
)

// openDB opens a fresh database file in the test's temporary directory.
func openDB(t testing.TB, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crossbus.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func TestIdempotencyStore(t *testing.T) {
	storetest.TestIdempotencyStore(t, func(t *testing.T) crossbus.IdempotencyStore { return openDB(t, sqlite.Options{}).Idempotency() })
}

func TestInboxStore(t *testing.T) {
	storetest.TestInboxStore(t, func(t *testing.T) storetest.Inbox {
		db := openDB(t, sqlite.Options{})
		return newInbox(t, db)
	})
}

func TestEventStore(t *testing.T) {
	storetest.TestEventStore(t, func(t *testing.T) sourcing.Store { return openDB(t, sqlite.Options{}).Events() })
}

func TestSnapshotStore(t *testing.T) {
	storetest.TestSnapshotStore(t, func(t *testing.T) sourcing.SnapshotStore { return openDB(t, sqlite.Options{}).Events() })
}

func TestCheckpointStore(t *testing.T) {
	storetest.TestCheckpointStore(t, func(t *testing.T) sourcing.CheckpointStore { return openDB(t, sqlite.Options{}).Events() })
}

func TestOutbox(t *testing.T) {
	storetest.TestOutbox(t, func(t *testing.T, route sourcing.OutboxRoute) storetest.OutboxStore {
		return openDB(t, sqlite.Options{Outbox: route}).Events()
	})
}

func TestChainStore(t *testing.T) {
	storetest.TestChainStore(t, func(t *testing.T) chain.Store { return openDB(t, sqlite.Options{}).Chains() })
}
