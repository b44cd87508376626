package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/patterns/sourcing"
)

// TestSnapshotStore checks the sourcing.SnapshotStore contract: a stream
// keeps its newest snapshot; an older one never replaces it.
func TestSnapshotStore(t *testing.T, newStore func(t *testing.T) sourcing.SnapshotStore) {
	tests := cases[sourcing.SnapshotStore]{
		{"MissingSnapshotIsNotFound", snapshotMissingSnapshotIsNotFound},
		{"SaveThenLoad", snapshotSaveThenLoad},
		{"NewerReplacesOlderNeverTheReverse", snapshotNewerReplacesOlderNeverTheReverse},
		{"StreamsAreIndependent", snapshotStreamsAreIndependent},
		{"ConcurrentSavesKeepTheNewest", snapshotConcurrentSavesKeepTheNewest},
		{"EmptyStreamNameIsRefused", snapshotEmptyStreamNameIsRefused},
	}
	tests.run(t, newStore)
}

func snapshotMissingSnapshotIsNotFound(t *testing.T, s sourcing.SnapshotStore) {
	ctx := context.Background()
	_, ok, err := s.LoadSnapshot(ctx, "none")
	require.NoError(t, err)
	assert.False(t, ok)
}

func snapshotSaveThenLoad(t *testing.T, s sourcing.SnapshotStore) {
	ctx := context.Background()
	require.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "acct", Version: 10, Schema: "v1", State: []byte(`{"balance":5}`)}))
	got, ok, err := s.LoadSnapshot(ctx, "acct")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(10), got.Version)
	assert.Equal(t, "v1", got.Schema)
	assert.JSONEq(t, `{"balance":5}`, string(got.State))
	assert.False(t, got.Taken.IsZero())
	assert.Equal(t, "acct", got.Stream)
}

func snapshotNewerReplacesOlderNeverTheReverse(t *testing.T, s sourcing.SnapshotStore) {
	ctx := context.Background()
	require.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "a", Version: 10, State: []byte("10")}))
	require.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "a", Version: 20, State: []byte("20")}))
	require.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "a", Version: 15, State: []byte("15")}))
	got, ok, err := s.LoadSnapshot(ctx, "a")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(20), got.Version)
	assert.Equal(t, "20", string(got.State))
}

func snapshotStreamsAreIndependent(t *testing.T, s sourcing.SnapshotStore) {
	ctx := context.Background()
	require.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "a", Version: 1, State: []byte("a")}))
	require.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "b", Version: 2, State: []byte("b")}))
	a, _, err := s.LoadSnapshot(ctx, "a")
	require.NoError(t, err)
	b, _, err := s.LoadSnapshot(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, "a", string(a.State))
	assert.Equal(t, "b", string(b.State))
}

func snapshotConcurrentSavesKeepTheNewest(t *testing.T, s sourcing.SnapshotStore) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for v := 1; v <= 20; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "c", Version: uint64(v), State: []byte{byte(v)}}))
		}()
	}
	wg.Wait()
	got, ok, err := s.LoadSnapshot(ctx, "c")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(20), got.Version)
	assert.Equal(t, []byte{20}, got.State)
}

func snapshotEmptyStreamNameIsRefused(t *testing.T, s sourcing.SnapshotStore) {
	ctx := context.Background()
	assert.ErrorIs(t, s.SaveSnapshot(ctx, sourcing.Snapshot{Version: 1}), sourcing.ErrInvalidStream)
}

// TestCheckpointStore checks the sourcing.CheckpointStore contract.
func TestCheckpointStore(t *testing.T, newStore func(t *testing.T) sourcing.CheckpointStore) {
	tests := cases[sourcing.CheckpointStore]{
		{"MissingCheckpointIsZero", checkpointMissingCheckpointIsZero},
		{"SaveOverwritesAndNamesAreIndependent", checkpointSaveOverwritesAndNamesAreIndependent},
		{"EmptyNameIsRefused", checkpointEmptyNameIsRefused},
	}
	tests.run(t, newStore)
}

func checkpointMissingCheckpointIsZero(t *testing.T, s sourcing.CheckpointStore) {
	ctx := context.Background()
	p, err := s.Checkpoint(ctx, "proj")
	require.NoError(t, err)
	assert.Zero(t, p)
}

func checkpointSaveOverwritesAndNamesAreIndependent(t *testing.T, s sourcing.CheckpointStore) {
	ctx := context.Background()
	require.NoError(t, s.SaveCheckpoint(ctx, "a", 5))
	require.NoError(t, s.SaveCheckpoint(ctx, "a", 9))
	require.NoError(t, s.SaveCheckpoint(ctx, "b", 2))
	a, err := s.Checkpoint(ctx, "a")
	require.NoError(t, err)
	b, err := s.Checkpoint(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, uint64(9), a)
	assert.Equal(t, uint64(2), b)
}

func checkpointEmptyNameIsRefused(t *testing.T, s sourcing.CheckpointStore) {
	ctx := context.Background()
	assert.Error(t, s.SaveCheckpoint(ctx, "", 1))
}
