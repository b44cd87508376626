package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
)

// TestFencedWritesRefuseAStaleLease: MarkSent and the chain store's writes
// given a context with a lease commit while its term is current and are
// refused with leader.ErrFenced once another holder's term has begun,
// writing nothing.
func TestFencedWritesRefuseAStaleLease(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, postgres.Options{Outbox: sourcing.ToTopic("payouts")})
	leases := db.Leases()
	a, err := leases.TryAcquire(ctx, "relay", "a", 300*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "a", a.Holder)
	actx := leader.WithLease(ctx, a)

	_, err = db.Events().Append(ctx, "s", sourcing.Any, credit(1), credit(2))
	require.NoError(t, err)
	msgs, err := db.Events().PendingOutbox(ctx, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.NoError(t, db.Events().MarkSent(actx, msgs[0].ID), "a's term is current")

	inst := &chain.Instance{ID: "i-1", Chain: "order", Status: chain.StatusRunning, Input: json.RawMessage(`{}`), Updated: time.Now()}
	require.NoError(t, db.Chains().Create(actx, inst))
	inst.Step = "payment"
	require.NoError(t, db.Chains().Save(actx, inst))

	time.Sleep(400 * time.Millisecond)
	b, err := leases.TryAcquire(ctx, "relay", "b", time.Minute)
	require.NoError(t, err)
	require.Equal(t, "b", b.Holder)

	require.ErrorIs(t, db.Events().MarkSent(actx, msgs[1].ID), leader.ErrFenced)
	left, err := db.Events().PendingOutbox(ctx, 10)
	require.NoError(t, err)
	assert.Len(t, left, 1, "the stale mark wrote nothing")

	stale := *inst
	stale.Step = "inventory"
	require.ErrorIs(t, db.Chains().Save(actx, &stale), leader.ErrFenced)
	require.ErrorIs(t, db.Chains().Create(actx, &chain.Instance{ID: "i-2", Chain: "order", Status: chain.StatusRunning, Updated: time.Now()}), leader.ErrFenced)
	got, err := db.Chains().Load(ctx, "i-1")
	require.NoError(t, err)
	assert.Equal(t, "payment", got.Step)

	// The current holder's writes go through.
	bctx := leader.WithLease(ctx, b)
	require.NoError(t, db.Events().MarkSent(bctx, msgs[1].ID))
	got.Step = "shipping"
	require.NoError(t, db.Chains().Save(bctx, got))
	// A lease of a name the store never saw fences too.
	require.ErrorIs(t, db.Events().MarkSent(leader.WithLease(ctx, leader.Lease{Name: "other", Holder: "x", Token: 1}), msgs[0].ID), leader.ErrFenced)
}
