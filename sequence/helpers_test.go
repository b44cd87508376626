package sequence_test

// Helpers shared by the package's tests.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func memBus(t *testing.T) (*crossbus.Bus, *memory.Provider) {
	t.Helper()
	p := memory.New(memory.Options{AutoCreate: true})
	b, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, p
}

func newRouter(t *testing.T, b *crossbus.Bus) *crossbus.Router {
	t.Helper()
	r, err := crossbus.NewRouter(b)
	require.NoError(t, err)
	return r
}

// runRouter runs r until the test ends.
func runRouter(t *testing.T, r *crossbus.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, crossbus.ErrClosed) {
			assert.NoError(t, err)
		}
	})
	<-r.Ready()
	require.NoError(t, r.Err())
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 5*time.Millisecond, "timed out waiting for %s", what)
}

func quick(attempts int) crossbus.RouteOption {
	return crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Multiplier: 2})
}

func settled(p *memory.Provider, topic, sub string) func() bool {
	return func() bool {
		st, _ := p.Stats(topic, sub)
		return st.Waiting+st.InFlight+st.Delayed == 0
	}
}
