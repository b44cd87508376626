package ops_test

import (
	"testing"

	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/ops/archivetest"
)

func TestMemoryArchiveStore(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) ops.ArchiveStore { return ops.NewMemoryArchiveStore() })
}
