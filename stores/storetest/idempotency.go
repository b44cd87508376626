// Package storetest holds the test suites every crossbus store passes: the
// idempotency Store suite here, and the suites of later store kinds beside it.
// A store's tests call the suite with a constructor:
//
//	func TestIdempotencyStore(t *testing.T) {
//		storetest.TestIdempotencyStore(t, func(t *testing.T) crossbus.IdempotencyStore { return newStore(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// TestIdempotencyStore checks the crossbus.IdempotencyStore contract. newStore returns an
// empty store for each subtest. Leases in the suite are short (a few hundred
// milliseconds), so stores must honour sub-second leases and TTLs.
func TestIdempotencyStore(t *testing.T, newStore func(t *testing.T) crossbus.IdempotencyStore) {
	ctx := context.Background()
	const long = time.Minute

	t.Run("FirstBeginClaimsTheKey", func(t *testing.T) {
		s := newStore(t)
		c, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimNew, c.Status)
		assert.NotEmpty(t, c.Token)
	})

	t.Run("BeginWhileHeldIsInProgress", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		c, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimInProgress, c.Status)
	})

	t.Run("CompletedKeyIsReportedCompleted", func(t *testing.T) {
		s := newStore(t)
		c, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, "k1", c.Token, long))
		c2, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimCompleted, c2.Status)
	})

	t.Run("ReleaseLetsTheRetryClaim", func(t *testing.T) {
		s := newStore(t)
		c, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, "k1", c.Token))
		c2, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimNew, c2.Status)
		assert.NotEqual(t, c.Token, c2.Token)
	})

	t.Run("ExpiredLeaseCanBeClaimedAgain", func(t *testing.T) {
		s := newStore(t)
		c, err := s.Begin(ctx, "k1", 200*time.Millisecond)
		require.NoError(t, err)
		time.Sleep(400 * time.Millisecond)
		c2, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		require.Equal(t, crossbus.ClaimNew, c2.Status)
		// The first holder's lease is lost: it can neither complete nor release.
		assert.ErrorIs(t, s.Complete(ctx, "k1", c.Token, long), crossbus.ErrLeaseLost)
		assert.ErrorIs(t, s.Release(ctx, "k1", c.Token), crossbus.ErrLeaseLost)
		c3, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimInProgress, c3.Status, "the second holder still holds the key")
	})

	t.Run("CompletedRecordExpiresAfterTTL", func(t *testing.T) {
		s := newStore(t)
		c, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, "k1", c.Token, 200*time.Millisecond))
		time.Sleep(400 * time.Millisecond)
		c2, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimNew, c2.Status)
	})

	t.Run("WrongTokenCannotCompleteOrRelease", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		assert.ErrorIs(t, s.Complete(ctx, "k1", "not-the-token", long), crossbus.ErrLeaseLost)
		assert.ErrorIs(t, s.Release(ctx, "k1", "not-the-token"), crossbus.ErrLeaseLost)
		assert.ErrorIs(t, s.Complete(ctx, "never-begun", "x", long), crossbus.ErrLeaseLost)
	})

	t.Run("CompleteTwiceFails", func(t *testing.T) {
		s := newStore(t)
		c, err := s.Begin(ctx, "k1", long)
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, "k1", c.Token, long))
		assert.ErrorIs(t, s.Complete(ctx, "k1", c.Token, long), crossbus.ErrLeaseLost)
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < 10; i++ {
			c, err := s.Begin(ctx, fmt.Sprintf("key-%d", i), long)
			require.NoError(t, err)
			assert.Equal(t, crossbus.ClaimNew, c.Status)
		}
	})

	t.Run("KeysMayHoldAnyBytes", func(t *testing.T) {
		s := newStore(t)
		key := "sub\x00https://example.com/a b?c=d&e='f'\x00id-ü-%_*"
		c, err := s.Begin(ctx, key, long)
		require.NoError(t, err)
		require.Equal(t, crossbus.ClaimNew, c.Status)
		c2, err := s.Begin(ctx, key+"x", long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimNew, c2.Status)
		require.NoError(t, s.Complete(ctx, key, c.Token, long))
		c3, err := s.Begin(ctx, key, long)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimCompleted, c3.Status)
	})

	t.Run("ConcurrentBeginsExactlyOneWins", func(t *testing.T) {
		s := newStore(t)
		for round := 0; round < 20; round++ {
			key := fmt.Sprintf("race-%d", round)
			var wins atomic.Int32
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := s.Begin(ctx, key, long)
					if err != nil {
						errs <- err
						return
					}
					if c.Status == crossbus.ClaimNew {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, int32(1), wins.Load(), "round %d: exactly one Begin wins", round)
		}
	})

	t.Run("CancelledContextIsAnError", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Begin(cctx, "k1", long)
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
	})
}
