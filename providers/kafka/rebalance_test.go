package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/kafka"
)

// TestRebalanceMidStreamKeepsOrderAndLosesNothing starts a second consumer
// of an ordered subscription while the first is busy. Partitions move
// between them; every event is handled, per-key order holds across the two
// processes, and no event is handled twice (a revoked partition waits for
// its records in handlers and commits before it moves).
func TestRebalanceMidStreamKeepsOrderAndLosesNothing(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	admin, err := kafka.New(ctx, testOptions(c))
	require.NoError(t, err)
	defer admin.Close(ctx)
	require.NoError(t, admin.CreateSubscription(ctx, "events", "ledger"))

	const keys, perKey = 12, 60
	var mu sync.Mutex
	seen := map[string][]int{}
	count := map[string]int{}
	var byProcess [2]atomic.Int64
	handler := func(proc int) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			time.Sleep(5 * time.Millisecond)
			var n int
			_, _ = fmt.Sscanf(crossbus.ExtensionString(e, crossbus.ExtSequence), "%d", &n)
			mu.Lock()
			seen[crossbus.PartitionKey(e)] = append(seen[crossbus.PartitionKey(e)], n)
			count[e.ID()]++
			mu.Unlock()
			byProcess[proc].Add(1)
			return nil
		})
	}
	open := func(proc int) *crossbus.Bus {
		p, err := kafka.New(ctx, testOptions(c))
		require.NoError(t, err)
		b, err := crossbus.New(p)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		_, err = b.Subscribe(ctx, "events", "ledger", handler(proc), crossbus.WithOrdering(), crossbus.WithConcurrency(4))
		require.NoError(t, err)
		return b
	}
	b1 := open(0)
	var batch []*crossbus.Event
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			e := crossbus.NewEvent("com.example.posting", "/rebalance-test")
			crossbus.SetPartitionKey(&e, fmt.Sprintf("account-%d", k))
			e.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%06d", i))
			batch = append(batch, &e)
		}
	}
	require.NoError(t, b1.Publish(ctx, "events", batch...))
	require.Eventually(t, func() bool { return byProcess[0].Load() >= keys*perKey/5 }, 60*time.Second, 5*time.Millisecond,
		"the first member handles a fifth of the events")
	open(1) // joins mid-stream: the group rebalances

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) == keys*perKey
	}, 60*time.Second, 10*time.Millisecond, "every event handled")
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, count, keys*perKey, "every event handled")
	for id, n := range count {
		assert.Equal(t, 1, n, "event %s handled %d times", id, n)
	}
	for k := 0; k < keys; k++ {
		got := seen[fmt.Sprintf("account-%d", k)]
		for i := range got {
			require.Equal(t, i, got[i], "account-%d: position %d holds %d", k, i, got[i])
		}
	}
	assert.Positive(t, byProcess[1].Load(), "the second process took partitions over")
	t.Logf("handled by the first process: %d, by the second: %d", byProcess[0].Load(), byProcess[1].Load())
}
