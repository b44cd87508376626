package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// cases is a suite's table: each guarantee by name, checked on a fresh
// store.
type cases[S any] []struct {
	name string
	fn   func(t *testing.T, s S)
}

// run runs each case in a subtest named after it, on the store newStore
// returns for that subtest.
func (cs cases[S]) run(t *testing.T, newStore func(t *testing.T) S) {
	for _, tc := range cs {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// NewTestEvent returns a valid event of the given type with JSON data.
func NewTestEvent(eventType string, data any) *crossbus.Event {
	e := crossbus.NewEvent(eventType, "/storetest")
	if data != nil {
		if err := crossbus.SetData(&e, data); err != nil {
			panic(err)
		}
	}
	return &e
}

func events(n int, prefix string) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		out[i] = NewTestEvent(prefix, map[string]int{"n": i})
	}
	return out
}

// mustClaim begins key for lease and requires a new claim; it returns the token.
func mustClaim(t *testing.T, s crossbus.IdempotencyStore, key string, lease time.Duration) string {
	t.Helper()
	c, err := s.Begin(context.Background(), key, lease)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c.Status, "Begin(%q)", key)
	require.NotEmpty(t, c.Token)
	return c.Token
}

// beginStatus begins key and returns what Begin found.
func beginStatus(t *testing.T, s crossbus.IdempotencyStore, key string) crossbus.ClaimStatus {
	t.Helper()
	c, err := s.Begin(context.Background(), key, idemLong)
	require.NoError(t, err)
	return c.Status
}
