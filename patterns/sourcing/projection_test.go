package sourcing_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/patterns/sourcing"
)

// balances is a read model: total credited per stream.
type balances struct {
	mu   sync.Mutex
	byID map[string]int
	seen map[uint64]int // position -> times handled
}

func newBalances() *balances { return &balances{byID: map[string]int{}, seen: map[uint64]int{}} }

func (b *balances) handle(ctx context.Context, r sourcing.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, err := entryOf(r)
	if err != nil {
		return err
	}
	b.byID[r.Stream] += d
	b.seen[r.Position]++
	return nil
}

func entryOf(r sourcing.Record) (int, error) {
	l, err := applyLedger(nil)(ledger{}, r)
	return l.Balance, err
}

func TestProjectorCatchesUpAndResumesFromCheckpoint(t *testing.T) {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	for i := 0; i < 10; i++ {
		_, err := store.Append(ctx, []string{"a", "b"}[i%2], sourcing.Any, credit(i))
		require.NoError(t, err)
	}
	view := newBalances()
	p := &sourcing.Projector{Name: "balances", Store: store, Checkpoints: store, Handle: view.handle, CheckpointEvery: 3}
	n, err := p.CatchUp(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	cp, err := store.Checkpoint(ctx, "balances")
	require.NoError(t, err)
	assert.Equal(t, uint64(10), cp)

	for i := 10; i < 15; i++ {
		_, err := store.Append(ctx, "a", sourcing.Any, credit(i))
		require.NoError(t, err)
	}
	// A new projector (after a restart) starts from the saved checkpoint.
	p2 := &sourcing.Projector{Name: "balances", Store: store, Checkpoints: store, Handle: view.handle}
	n, err = p2.CatchUp(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	assert.Equal(t, 0+2+4+6+8+10+11+12+13+14, view.byID["a"])
	assert.Equal(t, 1+3+5+7+9, view.byID["b"])
	for pos, times := range view.seen {
		assert.Equal(t, 1, times, "position %d handled once", pos)
	}
}

func TestProjectorFailureKeepsPositionOfLastHandledEvent(t *testing.T) {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	for i := 0; i < 6; i++ {
		_, err := store.Append(ctx, "s", sourcing.Any, credit(i))
		require.NoError(t, err)
	}
	boom := errors.New("read model down")
	fail := true
	handled := 0
	p := &sourcing.Projector{Name: "p", Store: store, Checkpoints: store, Handle: func(ctx context.Context, r sourcing.Record) error {
		if r.Position == 4 && fail {
			return boom
		}
		handled++
		return nil
	}}
	n, err := p.CatchUp(ctx)
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "position 4")
	assert.Equal(t, 3, n)
	cp, err := store.Checkpoint(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), cp, "the failed event is not checkpointed")
	fail = false
	n, err = p.CatchUp(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the failed event and the rest are handled on the next catch-up")
	assert.Equal(t, 6, handled)
}

func TestProjectorRunFollowsNewEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	view := newBalances()
	got := make(chan uint64, 100)
	p := &sourcing.Projector{Name: "live", Store: store, Checkpoints: store, PollInterval: time.Hour,
		Handle: func(ctx context.Context, r sourcing.Record) error {
			got <- r.Position
			return view.handle(ctx, r)
		}}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for i := 1; i <= 5; i++ {
		_, err := store.Append(ctx, "s", sourcing.Any, credit(i))
		require.NoError(t, err)
		select {
		case pos := <-got:
			assert.Equal(t, uint64(i), pos)
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not projected (the store's change notification should wake Run)", i)
		}
	}
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 15, view.byID["s"])
}

func TestProjectorValidatesItsFields(t *testing.T) {
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	for _, p := range []*sourcing.Projector{
		{Store: store, Checkpoints: store, Handle: func(context.Context, sourcing.Record) error { return nil }},
		{Name: "x", Checkpoints: store, Handle: func(context.Context, sourcing.Record) error { return nil }},
		{Name: "x", Store: store, Checkpoints: store},
	} {
		_, err := p.CatchUp(context.Background())
		assert.Error(t, err)
	}
}
