package nats_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/nats"
)

// TestEmbeddedServerRestartLosesNothing publishes and consumes on the
// embedded server, stops the server in the middle of both, starts it again on
// the same directory (a new program run) and checks that every event is
// handled exactly once: the stream keeps what it acknowledged, publishers
// re-send what was not acknowledged (JetStream drops the copies by
// Nats-Msg-Id), and the idempotency middleware drops redeliveries of events
// handled before the stop whose acks were lost.
func TestEmbeddedServerRestartLosesNothing(t *testing.T) {
	const total = 600
	dir := t.TempDir()
	url := "nats+embedded://" + dir
	ctx := context.Background()

	evs := make([]*crossbus.Event, total)
	for i := range evs {
		e := crossbus.NewEvent("com.example.order.placed", "/restart-test")
		require.NoError(t, crossbus.SetData(&e, map[string]int{"n": i}))
		evs[i] = &e
	}
	// A durable store in production; shared here the way two runs of a
	// program share their database. It counts the duplicates it stops.
	store := &countingStore{IdempotencyStore: crossbus.NewMemoryIdempotencyStore(0)}
	var mu sync.Mutex
	effects := map[string]int{} // business effects per event id
	var runs atomic.Int64       // handler runs, duplicates included
	handler := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		runs.Add(1)
		time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
		mu.Lock()
		effects[e.ID()]++
		mu.Unlock()
		return nil
	})
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(effects)
	}
	opts := []crossbus.RouteOption{
		crossbus.WithIdempotency(store, crossbus.IdempotencyOptions{}),
		crossbus.WithConcurrency(4), crossbus.WithAckDeadline(2 * time.Second),
	}

	// First run: publish in batches while consuming; stop the server once
	// half is published and handlers are busy.
	bus1, err := crossbus.Open(ctx, url)
	require.NoError(t, err)
	_, err = bus1.Subscribe(ctx, "orders", "billing", handler, opts...)
	require.NoError(t, err)
	var srv *server.Server
	require.True(t, bus1.As(&srv), "the embedded server is reachable through As")

	unsent := map[int]bool{}
	for i := range evs {
		unsent[i] = true
	}
	stopped := false
	for start := 0; start < total; start += 20 {
		batch := evs[start : start+20]
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := bus1.Publish(pctx, "orders", batch...)
		cancel()
		var pe *crossbus.PublishError
		switch {
		case err == nil:
			for i := range batch {
				delete(unsent, start+i)
			}
		case errors.As(err, &pe):
			failed := map[int]bool{}
			for _, f := range pe.Failed {
				failed[f.Index] = true
			}
			for i := range batch {
				if !failed[i] {
					delete(unsent, start+i)
				}
			}
		default:
			require.True(t, stopped, "publish failed before the stop: %v", err)
		}
		if stopped {
			break // the publishing program dies with the server
		}
		if start+20 >= total/2 {
			for distinct() < 50 {
				time.Sleep(time.Millisecond)
			}
			srv.Shutdown() // the server goes away under publisher and consumer
			srv.WaitForShutdown()
			stopped = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.True(t, stopped, "the server was stopped mid-stream")
	handledBefore := distinct()
	closeStart := time.Now()
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = bus1.Close(closeCtx) // errors expected: the server is gone
	cancel()
	t.Logf("first run: %d events handled, %d not acknowledged by the stream; closed in %v",
		handledBefore, len(unsent), time.Since(closeStart).Round(time.Millisecond))

	// Second run on the same directory: re-send what was not
	// acknowledged, plus a batch that was (the stream drops those copies).
	bus2, err := crossbus.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus2.Close(context.Background()) })
	_, err = bus2.Subscribe(ctx, "orders", "billing", handler, opts...)
	require.NoError(t, err)
	resend := append([]*crossbus.Event{}, evs[:20]...)
	for i := range evs {
		if unsent[i] {
			resend = append(resend, evs[i])
		}
	}
	require.NoError(t, bus2.Publish(ctx, "orders", resend...))

	deadline := time.Now().Add(60 * time.Second)
	for distinct() < total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // late duplicates would show now
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, effects, total, "every event is handled after the restart")
	for _, e := range evs {
		assert.Equal(t, 1, effects[e.ID()], "event %s handled %d times", e.ID(), effects[e.ID()])
	}
	t.Logf("handler runs: %d for %d events; duplicates stopped by the idempotency store: %d", runs.Load(), total, store.duplicates.Load())
}

// countingStore counts the deliveries the idempotency middleware skipped
// because the event was already handled.
type countingStore struct {
	crossbus.IdempotencyStore
	duplicates atomic.Int64
}

func (s *countingStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	c, err := s.IdempotencyStore.Begin(ctx, key, lease)
	if err == nil && c.Status == crossbus.ClaimCompleted {
		s.duplicates.Add(1)
	}
	return c, err
}

// TestEmbeddedURLErrors checks that bad embedded URLs name the problem.
func TestEmbeddedURLErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"nats+embedded://host/dir", "no host"},
		{"nats+embedded://", "absolute directory"},
		{"nats+embedded:///tmp/x?listen=nope", "listen"},
		{"nats+embedded:///tmp/x?bogus=1", `unknown nats URL parameter "bogus"`},
		{"nats+embedded:///tmp/x?ackwait=soon", "ackwait"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := crossbus.Open(ctx, tc.url)
			require.Error(t, err)
			assert.ErrorIs(t, err, crossbus.ErrInvalidURL)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
