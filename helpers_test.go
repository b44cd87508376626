package crossbus_test

// Helpers shared by the package's external tests.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

func memBus(t *testing.T) (*crossbus.Bus, *memory.Provider) {
	t.Helper()
	b, err := crossbus.Open(context.Background(), "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var p *memory.Provider
	require.True(t, b.As(&p))
	return b, p
}

func quick(attempts int) crossbus.RouteOption {
	return crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Multiplier: 2})
}

// runRouter runs r until the test ends.
func runRouter(t *testing.T, r *crossbus.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, crossbus.ErrClosed) { // the test may close the bus first
			assert.NoError(t, err)
		}
	})
	<-r.Ready() // subscriptions open (or Run failed): events published now are received
	require.NoError(t, r.Err(), "router failed to start")
}

// newRouter returns a router on b, failing the test if it cannot.
func newRouter(t *testing.T, b *crossbus.Bus, defaults ...crossbus.RouteOption) *crossbus.Router {
	t.Helper()
	r, err := crossbus.NewRouter(b, defaults...)
	require.NoError(t, err)
	return r
}

// waitUntil polls cond (for state no channel signals) for up to 5s, on the
// test's goroutine (so tests that count goroutines can use it).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func settled(p *memory.Provider, topic, sub string) func() bool {
	return func() bool {
		st, _ := p.Stats(topic, sub)
		return st.Waiting+st.InFlight+st.Delayed == 0
	}
}

// seqEvent is an event of partition key key with sequence seq.
func seqEvent(key string, seq uint64) *crossbus.Event {
	e := crossbus.NewEvent("com.example.price", "/prices")
	crossbus.SetPartitionKey(&e, key)
	e.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%020d", seq))
	e.SetSubject(fmt.Sprintf("%s#%d", key, seq))
	return &e
}

// passThrough is middleware that does nothing.
func passThrough(next crossbus.Handler) crossbus.Handler { return next }

// failEvery is a batch result that fails each of n events with err.
func failEvery(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
