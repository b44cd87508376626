package aws

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBatcherSendsALoneItemAtOnceAndGroupsUnderLoad(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	b := newBatcher(4, func(ctx context.Context, items []*batchItem) {
		mu.Lock()
		sizes = append(sizes, len(items))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release // hold the first call so the others queue up
		}
	})
	lone := &batchItem{handle: "h0", done: make(chan struct{})}
	b.add(lone)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 }, time.Second, time.Millisecond,
		"a lone item is sent without waiting for company")

	items := make([]*batchItem, 35)
	for i := range items {
		items[i] = &batchItem{handle: "h", done: make(chan struct{})}
		b.add(items[i])
	}
	// While one partial call is in flight, only full batches may start.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 4 }, time.Second, time.Millisecond)
	mu.Lock()
	assert.Equal(t, []int{1, 10, 10, 10}, sizes)
	mu.Unlock()
	close(release)
	require.NoError(t, b.wait(context.Background()))
	for _, it := range append(items, lone) {
		select {
		case <-it.done:
		default:
			t.Fatal("an item was not sent")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{1, 10, 10, 10, 5}, sizes, "the rest went together once a call returned")
}

func TestBatcherWaitEndsWithTheContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	b := newBatcher(1, func(ctx context.Context, items []*batchItem) { <-block })
	b.add(&batchItem{done: make(chan struct{})})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, b.wait(ctx), context.DeadlineExceeded)
}

func TestVisibilitySecondsRoundsUpAndCaps(t *testing.T) {
	assert.Equal(t, int32(0), visibilitySeconds(0))
	assert.Equal(t, int32(1), visibilitySeconds(time.Millisecond))
	assert.Equal(t, int32(2), visibilitySeconds(1500*time.Millisecond))
	assert.Equal(t, int32(43200), visibilitySeconds(13*time.Hour), "SQS's 12-hour maximum")
}

func TestChunksRespectCountAndBytes(t *testing.T) {
	idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	size := func(i int) int { return []int{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 40}[i] }
	assert.Equal(t, [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10, 11}}, chunks(idx, size, 10, 50))
	assert.Equal(t, [][]int{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10}, {11}}, chunks(idx, size, 10, 10),
		"an entry over the byte bound still goes, alone")
}
