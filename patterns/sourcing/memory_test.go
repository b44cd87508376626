package sourcing_test

import (
	"testing"

	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/storetest"
)

func TestMemoryEventStore(t *testing.T) {
	storetest.TestEventStore(t, func(t *testing.T) sourcing.Store { return sourcing.NewMemoryStore(sourcing.MemoryOptions{}) })
}

func TestMemorySnapshotStore(t *testing.T) {
	storetest.TestSnapshotStore(t, func(t *testing.T) sourcing.SnapshotStore { return sourcing.NewMemoryStore(sourcing.MemoryOptions{}) })
}

func TestMemoryCheckpointStore(t *testing.T) {
	storetest.TestCheckpointStore(t, func(t *testing.T) sourcing.CheckpointStore { return sourcing.NewMemoryStore(sourcing.MemoryOptions{}) })
}

func TestMemoryOutbox(t *testing.T) {
	storetest.TestOutbox(t, func(t *testing.T, route sourcing.OutboxRoute) storetest.OutboxStore {
		return sourcing.NewMemoryStore(sourcing.MemoryOptions{Outbox: route})
	})
}
