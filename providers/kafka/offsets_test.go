package kafka

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPartitionCommitsOnlyTheSettledPrefix(t *testing.T) {
	p := newPartition(0)
	var es []*entry
	for off := int64(100); off < 110; off++ {
		e, ok := p.add(off, 3)
		require.True(t, ok)
		require.True(t, p.handOut())
		es = append(es, e)
	}
	_, _, ok := p.committable(false)
	assert.False(t, ok, "nothing settled, nothing to commit")

	p.settle(es[1])
	p.settle(es[2])
	_, _, ok = p.committable(false)
	assert.False(t, ok, "offset 100 is still in a handler: 101 and 102 must wait")

	p.settle(es[0])
	off, epoch, ok := p.committable(false)
	require.True(t, ok)
	assert.Equal(t, int64(103), off, "one past the settled prefix 100..102")
	assert.Equal(t, int32(3), epoch)
	p.committed(off)
	_, _, ok = p.committable(false)
	assert.False(t, ok, "already committed")

	for _, i := range rand.Perm(7) {
		p.settle(es[3+i])
	}
	off, _, ok = p.committable(false)
	require.True(t, ok)
	assert.Equal(t, int64(110), off)
	assert.Zero(t, p.out)
}

func TestPartitionDropsStaleAndRevokedRecords(t *testing.T) {
	p := newPartition(1)
	_, ok := p.add(5, 0)
	require.True(t, ok)
	_, ok = p.add(5, 0)
	assert.False(t, ok, "a record fetched twice is kept once")
	_, ok = p.add(4, 0)
	assert.False(t, ok, "an older record is stale")

	e, ok := p.add(6, 0)
	require.True(t, ok)
	require.True(t, p.handOut())
	idle := p.startRevoke()
	assert.False(t, p.handOut(), "nothing more is handed out once revoking")
	_, ok = p.add(7, 0)
	assert.False(t, ok, "nothing more is added once revoking")
	select {
	case <-idle:
		t.Fatal("idle before the handed-out record settled")
	default:
	}
	_, _, ok = p.committable(false)
	assert.False(t, ok, "the commit loop leaves a revoking partition alone")
	p.takeBack() // the handed-out record is nacked
	<-idle
	_, _, ok = p.committable(true)
	assert.False(t, ok, "offset 5 never settled: nothing to commit")
	_ = e
}

func TestPartitionCompactsSettledEntries(t *testing.T) {
	p := newPartition(2)
	for off := int64(0); off < 1000; off++ {
		e, ok := p.add(off, 0)
		require.True(t, ok)
		require.True(t, p.handOut())
		p.settle(e)
	}
	assert.Less(t, len(p.pending), 200, "settled entries do not accumulate")
	off, _, ok := p.committable(false)
	require.True(t, ok)
	assert.Equal(t, int64(1000), off)
}
