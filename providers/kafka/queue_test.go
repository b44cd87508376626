package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/driver"
)

// TestQueueDroppingRevokedRecordsMakesRoom fills the queue with records of
// a partition that is then revoked: Receive's take drops them all and hands
// out nothing, and the fetcher waiting for room must wake up (it used to
// wait forever, so the receiver's other partitions stalled).
func TestQueueDroppingRevokedRecordsMakesRoom(t *testing.T) {
	const limit = 4
	q := newQueue()
	revoked := newPartition(2)
	for i := range limit {
		ent, ok := revoked.add(int64(i), 0)
		require.True(t, ok)
		q.push(&delivery{part: revoked, ent: ent}, false)
	}
	room := make(chan int, 1)
	go func() { room <- q.waitRoom(context.Background(), limit) }()
	select {
	case <-room:
		t.Fatal("a full queue has no room")
	case <-time.After(50 * time.Millisecond):
	}
	revoked.startRevoke()
	assert.Zero(t, q.take(make([]driver.Delivery, 8)), "records of a revoked partition are dropped")
	select {
	case n := <-room:
		assert.Equal(t, limit, n)
	case <-time.After(5 * time.Second):
		t.Fatal("the fetcher still waits for room in an empty queue")
	}
}
