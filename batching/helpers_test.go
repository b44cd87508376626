package batching_test

import (
	"context"
	"testing"
	"time"

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

func mkEvents(n int) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		e := crossbus.NewEvent("com.example.test", "/test")
		out[i] = &e
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 5*time.Millisecond, "timed out waiting for %s", what)
}
