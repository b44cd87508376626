package providerkit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/internal/providerkit"
)

type fakeReceiver struct {
	set    *providerkit.Receivers[*fakeReceiver]
	err    error
	closed int
	ctx    context.Context
}

func (r *fakeReceiver) Close(ctx context.Context) error {
	r.closed++
	r.ctx = ctx
	r.set.Remove(r)
	return r.err
}

func TestReceiversCloseStopsEveryReceiverAndJoinsErrors(t *testing.T) {
	var set providerkit.Receivers[*fakeReceiver]
	errA, errB := errors.New("a failed"), errors.New("b failed")
	a := &fakeReceiver{set: &set, err: errA}
	b := &fakeReceiver{set: &set, err: errB}
	c := &fakeReceiver{set: &set}
	for _, r := range []*fakeReceiver{a, b, c} {
		require.True(t, set.Add(r))
	}
	require.NoError(t, c.Close(context.Background()), "a receiver closed on its own leaves the set")
	assert.Equal(t, 2, set.Len())

	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "close")
	first, err := set.Close(ctx)
	assert.True(t, first)
	require.ErrorIs(t, err, errA)
	require.ErrorIs(t, err, errB)
	assert.Equal(t, 1, a.closed)
	assert.Equal(t, 1, b.closed)
	assert.Equal(t, 1, c.closed, "a receiver that left the set is not closed again")
	assert.Equal(t, "close", a.ctx.Value(key{}), "receivers are closed with the Close context")
	assert.True(t, set.Closed())
	assert.Zero(t, set.Len())

	first, err = set.Close(ctx)
	assert.False(t, first, "a second Close does nothing")
	require.NoError(t, err)
	assert.Equal(t, 1, a.closed)
}

func TestReceiversRefuseAfterClose(t *testing.T) {
	var set providerkit.Receivers[*fakeReceiver]
	first, err := set.Close(context.Background())
	require.True(t, first)
	require.NoError(t, err)
	r := &fakeReceiver{set: &set}
	assert.False(t, set.Add(r))
	assert.Zero(t, set.Len())
}
