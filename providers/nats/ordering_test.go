package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// orderedPair opens two processes' buses on srv with the default PinnedTTL
// (30s) and subscribes each to the ordered route ledger/postings; every
// event a process handles goes to its channel.
func orderedPair(t *testing.T, srv interface{ ClientURL() string }) (buses [2]*crossbus.Bus, subs [2]*crossbus.Subscription, got [2]chan string) {
	t.Helper()
	ctx := context.Background()
	for i := range 2 {
		p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
		require.NoError(t, err)
		b, err := crossbus.New(p)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		buses[i] = b
		got[i] = make(chan string, 64)
	}
	for i := range 2 {
		ch := got[i]
		s, err := buses[i].Subscribe(ctx, "ledger", "postings", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			ch <- e.ID()
			return nil
		}), crossbus.WithOrdering())
		require.NoError(t, err)
		subs[i] = s
		if i == 0 {
			// The first process receives an event, so it holds the pin.
			e := crossbus.NewEvent("com.example.posting", "/ordering-test")
			require.NoError(t, buses[0].Publish(ctx, "ledger", &e))
			select {
			case id := <-ch:
				require.Equal(t, e.ID(), id)
			case <-time.After(10 * time.Second):
				t.Fatal("the first process received nothing")
			}
		}
	}
	return buses, subs, got
}

// pinnedClient is the client id the ordered consumer is pinned to ("" when none).
func pinnedClient(t *testing.T, b *crossbus.Bus) string {
	t.Helper()
	var js jetstream.JetStream
	require.True(t, b.As(&js))
	ctx := context.Background()
	stream, err := js.StreamNameBySubject(ctx, "ledger")
	require.NoError(t, err)
	c, err := js.Consumer(ctx, stream, "postings")
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	for _, g := range info.PriorityGroups {
		return g.PinnedClientID
	}
	return ""
}

// TestGracefulCloseHandsAnOrderedRouteOver closes the pinned process of an
// ordered route gracefully: it releases the pin, so the other process
// receives the next event at once instead of after PinnedTTL (30s).
func TestGracefulCloseHandsAnOrderedRouteOver(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	buses, subs, got := orderedPair(t, srv)
	require.NotEmpty(t, pinnedClient(t, buses[1]))

	require.NoError(t, subs[0].Close(ctx))
	e := crossbus.NewEvent("com.example.posting", "/ordering-test")
	start := time.Now()
	require.NoError(t, buses[1].Publish(ctx, "ledger", &e))
	select {
	case id := <-got[1]:
		assert.Equal(t, e.ID(), id)
		t.Logf("the successor received the next event %v after the publish", time.Since(start))
	case <-time.After(time.Second):
		t.Fatalf("the successor received nothing within 1s of the pinned process's graceful close (pin still held; pinned client %q)", pinnedClient(t, buses[1]))
	}
}

// TestStandbyCloseKeepsTheActivePin closes the process that is not pinned:
// the active process keeps its pin (a standby must not release another
// client's pin) and keeps receiving.
func TestStandbyCloseKeepsTheActivePin(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	buses, subs, got := orderedPair(t, srv)
	before := pinnedClient(t, buses[0])
	require.NotEmpty(t, before)

	require.NoError(t, subs[1].Close(ctx))
	assert.Equal(t, before, pinnedClient(t, buses[0]), "the active process's pin")
	e := crossbus.NewEvent("com.example.posting", "/ordering-test")
	require.NoError(t, buses[0].Publish(ctx, "ledger", &e))
	select {
	case id := <-got[0]:
		assert.Equal(t, e.ID(), id)
	case <-time.After(10 * time.Second):
		t.Fatal("the active process stopped receiving")
	}
}
