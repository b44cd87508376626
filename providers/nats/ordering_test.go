package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/nats"
)

// TestOrderedSubscriptionHasOneActiveClient runs an ordered subscription in
// two processes: the pinned-client consumer sends every event to one of
// them, which keeps per-key order; when that process stops, the other takes
// over after PinnedTTL and receives the rest, still in order.
func TestOrderedSubscriptionHasOneActiveClient(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	open := func() *crossbus.Bus {
		p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true, PinnedTTL: 2 * time.Second})
		require.NoError(t, err)
		b, err := crossbus.New(p)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		return b
	}
	const keys, perKey = 8, 40
	var mu sync.Mutex
	seen := map[string][]int{} // key -> sequence numbers in handling order
	byProcess := [2]int{}
	handler := func(proc int) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			var n int
			_, _ = fmt.Sscanf(crossbus.ExtensionString(e, crossbus.ExtSequence), "%d", &n)
			mu.Lock()
			seen[crossbus.PartitionKey(e)] = append(seen[crossbus.PartitionKey(e)], n)
			byProcess[proc]++
			mu.Unlock()
			return nil
		})
	}
	buses := [2]*crossbus.Bus{open(), open()}
	var subs [2]*crossbus.Subscription
	for i, b := range buses {
		s, err := b.Subscribe(ctx, "ledger", "postings", handler(i), crossbus.WithOrdering(), crossbus.WithConcurrency(4))
		require.NoError(t, err)
		subs[i] = s
	}
	publish := func(from, to int) {
		var batch []*crossbus.Event
		for i := from; i < to; i++ {
			for k := 0; k < keys; k++ {
				e := crossbus.NewEvent("com.example.posting", "/ordering-test")
				crossbus.SetPartitionKey(&e, fmt.Sprintf("account-%d", k))
				e.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%06d", i))
				batch = append(batch, &e)
			}
		}
		require.NoError(t, buses[1].Publish(ctx, "ledger", batch...))
	}
	handled := func() int {
		mu.Lock()
		defer mu.Unlock()
		return byProcess[0] + byProcess[1]
	}
	waitHandled := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for handled() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		require.Equal(t, n, handled(), "events handled")
	}

	publish(0, perKey/2)
	waitHandled(keys * perKey / 2)
	mu.Lock()
	active := 0
	if byProcess[1] > byProcess[0] {
		active = 1
	}
	assert.Zero(t, byProcess[1-active], "only the pinned client receives events")
	mu.Unlock()

	// The pinned process stops; the other one takes over.
	require.NoError(t, subs[active].Close(ctx))
	publish(perKey/2, perKey)
	waitHandled(keys * perKey)

	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, byProcess[1-active], "the second process took over")
	for k := 0; k < keys; k++ {
		got := seen[fmt.Sprintf("account-%d", k)]
		require.Len(t, got, perKey)
		for i, n := range got {
			require.Equal(t, i, n, "account-%d: position %d holds %d", k, i, n)
		}
	}
}
