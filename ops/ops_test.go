package ops_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
	_ "github.com/crossbus/crossbus/providers/memory"
)

func TestNormalizeReasonKeepsCausesTogether(t *testing.T) {
	for _, c := range [][2]string{
		{"order 17 failed after 1.5s: dial 10.0.0.7:5432", "order <n> failed after <duration>: dial <addr>"},
		{"order 942 failed after 300ms: dial 10.0.0.9:5432", "order <n> failed after <duration>: dial <addr>"},
		{"user 3f2b9c1e-8a4d-4e5f-9b6a-0c1d2e3f4a5b not found", "user <uuid> not found"},
		{"smtp to bob@example.com refused by mail.example.com:25", "smtp to <email> refused by <addr>"},
		{"GET https://api.example.com/v1/items/9 returned 503", "GET <url> returned <n>"},
		{"checksum deadbeef12 mismatch at 0x1f", "checksum <hex> mismatch at <hex>"},
		{"handler panic: boom\ngoroutine 7 [running]:\nmain.f()", "handler panic: boom"},
		{"dial [::1]:8080: refused", "dial <addr>: refused"},
		{"", "(no reason)"},
	} {
		assert.Equal(t, c[1], ops.NormalizeReason(c[0]), "reason %q", c[0])
	}
}

func memBus(t *testing.T, opts ...crossbus.BusOption) *crossbus.Bus {
	t.Helper()
	b, err := crossbus.Open(context.Background(), "mem://", opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// deadLettered runs a route that dead-letters every event it gets and
// publishes n events; it returns once all are dead-lettered.
func deadLettered(t *testing.T, b *crossbus.Bus, topic, sub string, n int) *ops.DeadLetters {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	done := 0
	s, err := b.Subscribe(ctx, topic, sub, crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		mu.Lock()
		done++
		mu.Unlock()
		return crossbus.Permanent(fmt.Errorf("order %s rejected", e.ID()))
	}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	for range n {
		e := crossbus.NewEvent("com.example.order", "/shop")
		require.NoError(t, b.Publish(ctx, topic, &e))
	}
	d, err := ops.NewDeadLetters(b, ops.Source{Topic: topic, Subscription: sub}, ops.Options{Wait: time.Second, Idle: 200 * time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := d.List(ctx, ops.ListOptions{})
		return err == nil && p.Total == n
	}, 10*time.Second, 50*time.Millisecond)
	return d
}

func TestRedriveInterruptedKeepsTheRestDeadLettered(t *testing.T) {
	b := memBus(t)
	d := deadLettered(t, b, "orders", "billing", 10)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := d.Redrive(ctx, ops.Selection{All: true}, ops.RedriveOptions{Rate: 20, To: "elsewhere",
		Progress: func(p ops.Progress) {
			if p.Done == 4 {
				cancel()
			}
		}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 4, res.Done)
	p, err := d.List(context.Background(), ops.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, 6, p.Total, "the unpublished stay dead-lettered")
	for _, id := range res.IDs {
		for _, it := range p.Items {
			assert.NotEqual(t, id, it.ID, "a moved dead letter left the queue")
		}
	}
}

func TestDeadLetterBadInputIsRefusedAndNothingMoves(t *testing.T) {
	b := memBus(t)
	d := deadLettered(t, b, "orders", "billing", 2)
	ctx := context.Background()
	for name, sel := range map[string]ops.Selection{
		"nothing selected": {},
		"two selections":   {All: true, Group: "g1"},
		"malformed id":     {IDs: []string{"not an id!"}},
	} {
		_, err := d.Redrive(ctx, sel, ops.RedriveOptions{Rate: 10})
		assert.ErrorIs(t, err, crossbus.ErrInvalidOption, name)
	}
	_, err := d.Redrive(ctx, ops.Selection{IDs: []string{ops.DeadLetterID("/x", "y", "billing", time.Now())}}, ops.RedriveOptions{Rate: 10})
	assert.ErrorIs(t, err, ops.ErrNotFound)
	_, err = d.Redrive(ctx, ops.Selection{Group: "gnone"}, ops.RedriveOptions{Rate: 10})
	assert.ErrorIs(t, err, ops.ErrNotFound)
	_, err = d.Redrive(ctx, ops.Selection{All: true}, ops.RedriveOptions{Rate: 0})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = d.Redrive(ctx, ops.Selection{All: true}, ops.RedriveOptions{Rate: 10, To: "Bad Topic"})
	assert.ErrorIs(t, err, crossbus.ErrInvalidName)
	_, err = ops.NewDeadLetters(b, ops.Source{Topic: "orders"}, ops.Options{})
	assert.ErrorIs(t, err, crossbus.ErrInvalidName)
	p, err := d.List(ctx, ops.ListOptions{Page: "x"})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Empty(t, p.Items)
	p, err = d.List(ctx, ops.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, p.Total, "nothing moved")
}

func TestReplayToOneSubscriptionAndResumeAfterCancel(t *testing.T) {
	store := ops.NewMemoryArchiveStore()
	a, err := ops.NewArchive(store, ops.ArchiveOptions{Topics: []string{"orders"}})
	require.NoError(t, err)
	b := memBus(t, a.BusOption())
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]map[string]int{"billing": {}, "shipping": {}}
	for sub := range seen {
		s, err := b.Subscribe(ctx, "orders", sub, crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if crossbus.ExtensionString(e, ops.ExtReplayed) != "" {
				seen[sub][e.ID()]++
			}
			return nil
		}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close(ctx) })
	}
	start := time.Now()
	var ids []string
	for range 30 {
		e := crossbus.NewEvent("com.example.order", "/shop")
		require.NoError(t, b.Publish(ctx, "orders", &e))
		ids = append(ids, e.ID())
	}
	rp, err := ops.NewReplayer(b, store)
	require.NoError(t, err)

	// Refused: the wrong way round, a zero rate, the source into itself for everyone, a bad pattern.
	for name, req := range map[string]ops.ReplayRequest{
		"wrong way round": {Topic: "orders", Subscription: "billing", Rate: 10, From: time.Now(), To: start},
		"zero rate":       {Topic: "orders", Subscription: "billing"},
		"endless loop":    {Topic: "orders", Rate: 10},
		"bad pattern":     {Topic: "orders", Subscription: "billing", Rate: 10, Pattern: `{"type": "x"}`},
	} {
		_, err := rp.Start(ctx, req, nil)
		assert.Error(t, err, name)
	}
	_, err = rp.Resume(ctx, "replay-unknown", nil)
	assert.ErrorIs(t, err, ops.ErrNotFound)

	rctx, cancel := context.WithCancel(ctx)
	st, err := rp.Start(rctx, ops.ReplayRequest{ID: "to-billing", Topic: "orders", Subscription: "billing", Rate: 200,
		From: start.Add(-time.Second)}, func(st ops.ReplayState) {
		if st.Published == 12 {
			cancel()
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, ops.ReplayInterrupted, st.Status)
	saved, err := store.LoadReplay(ctx, "to-billing")
	require.NoError(t, err)
	assert.Equal(t, int64(12), saved.Published, "progress saved")
	st, err = rp.Resume(ctx, "to-billing", nil)
	require.NoError(t, err)
	assert.Equal(t, ops.ReplayDone, st.Status)
	assert.Equal(t, int64(30), st.Published)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["billing"]) == 30
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		assert.Equal(t, 1, seen["billing"][id], "replayed once to billing")
	}
	assert.Empty(t, seen["shipping"], "a replay to one subscription is not handled by another")
	stats, err := store.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(30), stats[0].Events, "replayed events are not archived again")
	_, err = rp.Start(ctx, ops.ReplayRequest{ID: "to-billing", Topic: "orders", Subscription: "billing", Rate: 10}, nil)
	assert.True(t, errors.Is(err, crossbus.ErrInvalidOption), "a finished replay is not run again: %v", err)
}
