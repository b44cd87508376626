package sourcing_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// ledger is a seller's payout ledger: the state folded from its events.
type ledger struct {
	Balance int `json:"balance"`
	Entries int `json:"entries"`
}

type entry struct {
	Amount int `json:"amount"`
}

func credit(amount int) *crossbus.Event {
	e := crossbus.NewEvent("payout.credited", "/test")
	_ = crossbus.SetData(&e, entry{Amount: amount})
	return &e
}

func applyLedger(calls *atomic.Int64) func(ledger, sourcing.Record) (ledger, error) {
	return func(l ledger, r sourcing.Record) (ledger, error) {
		if calls != nil {
			calls.Add(1)
		}
		d, err := crossbus.DataAs[entry](r.Event)
		if err != nil {
			return l, err
		}
		l.Balance += d.Amount
		l.Entries++
		return l, nil
	}
}

func TestAggregateReplayAndSnapshotAgree(t *testing.T) {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	var applied atomic.Int64
	agg := &sourcing.Aggregate[ledger]{Store: store, Apply: applyLedger(&applied), Snapshots: store, SnapshotEvery: 10}
	want := 0
	for i := 1; i <= 25; i++ {
		_, _, err := agg.Execute(ctx, "seller-1", func(l ledger) ([]*crossbus.Event, error) {
			return []*crossbus.Event{credit(i)}, nil
		})
		require.NoError(t, err)
		want += i
	}
	replayed, err := agg.Replay(ctx, "seller-1")
	require.NoError(t, err)
	assert.Equal(t, ledger{Balance: want, Entries: 25}, replayed.Value)
	assert.Equal(t, 25, replayed.Replayed)
	assert.Zero(t, replayed.SnapshotVersion)

	snap, ok, err := store.LoadSnapshot(ctx, "seller-1")
	require.NoError(t, err)
	require.True(t, ok, "every 10 events a snapshot is taken")
	assert.Equal(t, uint64(20), snap.Version)

	applied.Store(0)
	loaded, err := agg.Load(ctx, "seller-1")
	require.NoError(t, err)
	assert.Equal(t, replayed.Value, loaded.Value, "snapshot + later events = full replay")
	assert.Equal(t, uint64(20), loaded.SnapshotVersion)
	assert.Equal(t, 5, loaded.Replayed)
	assert.Equal(t, int64(5), applied.Load(), "only the events after the snapshot are applied")
	assert.Equal(t, uint64(25), loaded.Version)
}

func TestAggregateIgnoresSnapshotOfAnotherSchema(t *testing.T) {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	_, err := store.Append(ctx, "s", sourcing.NoStream, credit(5), credit(7))
	require.NoError(t, err)
	require.NoError(t, store.SaveSnapshot(ctx, sourcing.Snapshot{Stream: "s", Version: 2, Schema: "old", State: []byte(`{"balance":999}`)}))
	agg := &sourcing.Aggregate[ledger]{Store: store, Apply: applyLedger(nil), Snapshots: store, Schema: "v2"}
	st, err := agg.Load(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, 12, st.Value.Balance)
	assert.Zero(t, st.SnapshotVersion)
}

func TestAggregateExecuteRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	agg := &sourcing.Aggregate[ledger]{Store: store, Apply: applyLedger(nil)}
	// Withdrawals must never overdraw: decide checks the balance it loaded,
	// and a concurrent change forces a reload.
	_, err := store.Append(ctx, "acct", sourcing.NoStream, credit(100))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var refused atomic.Int64
	errOverdraw := errors.New("insufficient balance")
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := agg.Execute(ctx, "acct", func(l ledger) ([]*crossbus.Event, error) {
				if l.Balance < 30 {
					return nil, errOverdraw
				}
				return []*crossbus.Event{credit(-30)}, nil
			})
			if errors.Is(err, errOverdraw) || errors.Is(err, sourcing.ErrConflict) {
				refused.Add(1)
				return
			}
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	st, err := agg.Replay(ctx, "acct")
	require.NoError(t, err)
	assert.Equal(t, 10, st.Value.Balance, "three withdrawals of 30 from 100, never more")
	assert.Equal(t, int64(5), refused.Load())
}

func TestAggregateApplyErrorNamesTheEvent(t *testing.T) {
	ctx := context.Background()
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{})
	bad := crossbus.NewEvent("payout.credited", "/test")
	require.NoError(t, crossbus.SetData(&bad, "not json"))
	_, err := store.Append(ctx, "s", sourcing.Any, credit(1), &bad)
	require.NoError(t, err)
	agg := &sourcing.Aggregate[ledger]{Store: store, Apply: applyLedger(nil)}
	_, err = agg.Load(ctx, "s")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"s" version 2`)
	assert.ErrorIs(t, err, crossbus.ErrInvalidData)
}

func TestExpectedString(t *testing.T) {
	for _, tc := range []struct {
		e    sourcing.Expected
		want string
	}{{sourcing.Any, "any version"}, {sourcing.NoStream, "no stream"}, {sourcing.StreamExists, "stream exists"}, {sourcing.Exactly(4), "version 4"}} {
		assert.Equal(t, tc.want, tc.e.String())
	}
	v, ok := sourcing.Exactly(3).Version()
	assert.True(t, ok)
	assert.Equal(t, uint64(3), v)
	_, ok = sourcing.Any.Version()
	assert.False(t, ok)
	assert.Equal(t, sourcing.NoStream, sourcing.Exactly(0), "Exactly(0) is NoStream")
}
