package postgres_test

import (
	"testing"

	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/ops/archivetest"
	"github.com/crossbus/crossbus/stores/postgres"
)

func TestArchiveStore(t *testing.T) {
	serverURL(t)
	archivetest.Run(t, func(t *testing.T) ops.ArchiveStore { return openDB(t, postgres.Options{}).Archive() })
}
