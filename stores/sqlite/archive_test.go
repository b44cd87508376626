package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/ops/archivetest"
	"github.com/crossbus/crossbus/stores/sqlite"
)

func TestArchiveStore(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) ops.ArchiveStore {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "archive.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db.Archive()
	})
}
