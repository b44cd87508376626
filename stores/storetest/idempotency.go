// Package storetest holds the test suites every crossbus store passes: the
// idempotency store suites here, and the suites of later store kinds beside
// them. A store's tests call a suite with a constructor:
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

// Durations of the idempotency suites. Leases and TTLs that must run out are
// short (stores must honour sub-second leases and TTLs); waits are twice
// as long, so a loaded machine does not make a test flaky.
const (
	idemLong  = time.Minute
	idemShort = 200 * time.Millisecond
	idemPast  = 2 * idemShort
)

// TestIdempotencyStore checks the crossbus.IdempotencyStore contract. newStore returns an
// empty store for each subtest. Leases in the suite are short (a few hundred
// milliseconds), so stores must honour sub-second leases and TTLs.
func TestIdempotencyStore(t *testing.T, newStore func(t *testing.T) crossbus.IdempotencyStore) {
	tests := cases[crossbus.IdempotencyStore]{
		{"FirstBeginClaimsTheKey", idemFirstBegin},
		{"BeginWhileHeldIsInProgress", idemBeginWhileHeld},
		{"CompletedKeyIsReportedCompleted", idemCompleted},
		{"ReleaseLetsTheRetryClaim", idemRelease},
		{"ExpiredLeaseCanBeClaimedAgain", idemExpiredLease},
		{"CompletedRecordExpiresAfterTTL", idemCompletedExpires},
		{"WrongTokenCannotCompleteOrRelease", idemWrongToken},
		{"CompleteTwiceFails", idemCompleteTwice},
		{"RenewKeepsTheClaimPastItsLease", idemRenewKeeps},
		{"RenewWithALostTokenIsLeaseLost", idemRenewLostToken},
		{"RenewAfterTheLeaseRanOutIsLeaseLost", idemRenewExpired},
		{"RenewAfterCompleteOrReleaseIsLeaseLost", idemRenewSettled},
		{"KeysAreIndependent", idemKeysIndependent},
		{"KeysMayHoldAnyBytes", idemKeyBytes},
		{"ConcurrentBeginsExactlyOneWins", idemConcurrentBegins},
		{"CancelledContextIsAnError", idemCancelled},
	}
	tests.run(t, newStore)
}

func idemFirstBegin(t *testing.T, s crossbus.IdempotencyStore) {
	mustClaim(t, s, "k1", idemLong)
}

func idemBeginWhileHeld(t *testing.T, s crossbus.IdempotencyStore) {
	mustClaim(t, s, "k1", idemLong)
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, s, "k1"))
}

func idemCompleted(t *testing.T, s crossbus.IdempotencyStore) {
	tok := mustClaim(t, s, "k1", idemLong)
	require.NoError(t, s.Complete(context.Background(), "k1", tok, idemLong))
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, s, "k1"))
}

func idemRelease(t *testing.T, s crossbus.IdempotencyStore) {
	tok := mustClaim(t, s, "k1", idemLong)
	require.NoError(t, s.Release(context.Background(), "k1", tok))
	tok2 := mustClaim(t, s, "k1", idemLong)
	assert.NotEqual(t, tok, tok2)
}

func idemExpiredLease(t *testing.T, s crossbus.IdempotencyStore) {
	ctx := context.Background()
	tok := mustClaim(t, s, "k1", idemShort)
	time.Sleep(idemPast)
	mustClaim(t, s, "k1", idemLong)
	// The first holder's lease is lost: it can neither complete nor release.
	assert.ErrorIs(t, s.Complete(ctx, "k1", tok, idemLong), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, s.Release(ctx, "k1", tok), crossbus.ErrLeaseLost)
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, s, "k1"), "the second holder still holds the key")
}

func idemCompletedExpires(t *testing.T, s crossbus.IdempotencyStore) {
	tok := mustClaim(t, s, "k1", idemLong)
	require.NoError(t, s.Complete(context.Background(), "k1", tok, idemShort))
	time.Sleep(idemPast)
	assert.Equal(t, crossbus.ClaimNew, beginStatus(t, s, "k1"))
}

func idemWrongToken(t *testing.T, s crossbus.IdempotencyStore) {
	ctx := context.Background()
	mustClaim(t, s, "k1", idemLong)
	assert.ErrorIs(t, s.Complete(ctx, "k1", "not-the-token", idemLong), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, s.Release(ctx, "k1", "not-the-token"), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, s.Complete(ctx, "never-begun", "x", idemLong), crossbus.ErrLeaseLost)
}

func idemCompleteTwice(t *testing.T, s crossbus.IdempotencyStore) {
	tok := mustClaim(t, s, "k1", idemLong)
	require.NoError(t, s.Complete(context.Background(), "k1", tok, idemLong))
	assert.ErrorIs(t, s.Complete(context.Background(), "k1", tok, idemLong), crossbus.ErrLeaseLost)
}

// idemRenewKeeps renews a short claim at once and checks it outlives its
// first lease: another Begin still finds it held, and its holder completes
// it.
func idemRenewKeeps(t *testing.T, s crossbus.IdempotencyStore) {
	ctx := context.Background()
	tok := mustClaim(t, s, "k1", idemShort)
	require.NoError(t, s.Renew(ctx, "k1", tok, idemLong))
	time.Sleep(idemPast)
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, s, "k1"), "the renewed claim outlived its first lease")
	require.NoError(t, s.Renew(ctx, "k1", tok, idemLong), "a claim can be renewed again")
	assert.NoError(t, s.Complete(ctx, "k1", tok, idemLong))
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, s, "k1"))
}

func idemRenewLostToken(t *testing.T, s crossbus.IdempotencyStore) {
	ctx := context.Background()
	tok := mustClaim(t, s, "k1", idemShort)
	time.Sleep(idemPast)
	tok2 := mustClaim(t, s, "k1", idemLong)
	assert.ErrorIs(t, s.Renew(ctx, "k1", tok, idemLong), crossbus.ErrLeaseLost, "the first holder lost the key")
	assert.ErrorIs(t, s.Renew(ctx, "k1", "not-the-token", idemLong), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, s.Renew(ctx, "never-begun", "x", idemLong), crossbus.ErrLeaseLost)
	// The failed renewals took nothing from the second holder.
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, s, "k1"))
	assert.NoError(t, s.Complete(ctx, "k1", tok2, idemLong))
}

// idemRenewExpired: a claim whose lease ran out cannot be revived by its old
// holder, even when no one claimed the key since.
func idemRenewExpired(t *testing.T, s crossbus.IdempotencyStore) {
	tok := mustClaim(t, s, "k1", idemShort)
	time.Sleep(idemPast)
	assert.ErrorIs(t, s.Renew(context.Background(), "k1", tok, idemLong), crossbus.ErrLeaseLost)
	mustClaim(t, s, "k1", idemLong)
}

func idemRenewSettled(t *testing.T, s crossbus.IdempotencyStore) {
	ctx := context.Background()
	tok := mustClaim(t, s, "done", idemLong)
	require.NoError(t, s.Complete(ctx, "done", tok, idemLong))
	assert.ErrorIs(t, s.Renew(ctx, "done", tok, idemLong), crossbus.ErrLeaseLost, "renew after complete")
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, s, "done"), "the failed renewal left the record completed")

	tok = mustClaim(t, s, "released", idemLong)
	require.NoError(t, s.Release(ctx, "released", tok))
	assert.ErrorIs(t, s.Renew(ctx, "released", tok, idemLong), crossbus.ErrLeaseLost, "renew after release")
	mustClaim(t, s, "released", idemLong)
}

func idemKeysIndependent(t *testing.T, s crossbus.IdempotencyStore) {
	for i := 0; i < 10; i++ {
		mustClaim(t, s, fmt.Sprintf("key-%d", i), idemLong)
	}
}

func idemKeyBytes(t *testing.T, s crossbus.IdempotencyStore) {
	key := "sub\x00https://example.com/a b?c=d&e='f'\x00id-ü-%_*"
	tok := mustClaim(t, s, key, idemLong)
	mustClaim(t, s, key+"x", idemLong)
	require.NoError(t, s.Complete(context.Background(), key, tok, idemLong))
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, s, key))
}

func idemConcurrentBegins(t *testing.T, s crossbus.IdempotencyStore) {
	for round := 0; round < 20; round++ {
		key := fmt.Sprintf("race-%d", round)
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.Begin(context.Background(), key, idemLong)
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
}

func idemCancelled(t *testing.T, s crossbus.IdempotencyStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Begin(ctx, "k1", idemLong)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
}
