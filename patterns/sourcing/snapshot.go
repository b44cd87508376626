package sourcing

import (
	"context"
	"time"
)

// Snapshot is an aggregate's state saved at a stream version, so loading it
// reads only the events after that version.
type Snapshot struct {
	Stream  string
	Version uint64 // the stream version the state includes
	// Schema names the encoding of State; a loader that expects another
	// schema ignores the snapshot and replays from the start.
	Schema string
	State  []byte
	Taken  time.Time
}

// SnapshotStore keeps the newest snapshot of each stream.
type SnapshotStore interface {
	// SaveSnapshot stores s unless the stream already has a snapshot at a
	// higher version (then it does nothing and returns nil).
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stream's snapshot; ok is false when it has none.
	LoadSnapshot(ctx context.Context, stream string) (s Snapshot, ok bool, err error)
}

// CheckpointStore keeps named positions: how far each projection or catch-up
// subscription has handled the global event order.
type CheckpointStore interface {
	// Checkpoint returns the last position saved under name (0 when none).
	Checkpoint(ctx context.Context, name string) (uint64, error)
	// SaveCheckpoint records that name has handled every event up to and
	// including position.
	SaveCheckpoint(ctx context.Context, name string, position uint64) error
}
