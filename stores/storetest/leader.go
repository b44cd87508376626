package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
)

// TestLeaderStore checks the leader.Store contract: leases with fencing
// tokens. newStore returns an empty store for each subtest. Leases in the
// suite last from 150ms to a minute, so stores must honour sub-second ones.
//
// The guarantees, one subtest each: a free lease is taken with a positive
// token; of concurrent acquirers exactly one holds it; a renewal keeps the
// token and extends the lease; a held lease refuses others and reports its
// holder; an expired lease passes to another holder with a higher token; a
// release frees it for the next holder, again with a higher token; a stale
// holder can neither renew nor release; the same holder returning after
// expiry starts a new term; tokens rise across many hand-overs; names are
// independent; invalid arguments are refused.
func TestLeaderStore(t *testing.T, newStore func(t *testing.T) leader.Store) {
	tests := cases[leader.Store]{
		{"FreeLeaseIsTakenWithAPositiveToken", leaderFirst},
		{"ConcurrentAcquirersExactlyOneHolds", leaderConcurrent},
		{"RenewalKeepsTheTokenAndExtendsTheLease", leaderRenew},
		{"HeldLeaseRefusesOthersAndNamesItsHolder", leaderHeld},
		{"ExpiryLetsAnotherHolderInWithAHigherToken", leaderExpiry},
		{"ReleaseFreesTheLeaseForTheNextTerm", leaderRelease},
		{"StaleHolderCannotRenew", leaderStaleRenew},
		{"StaleHolderCannotRelease", leaderStaleRelease},
		{"SameHolderAfterExpiryStartsANewTerm", leaderSameHolderNewTerm},
		{"TokensRiseAcrossHandOvers", leaderTokensRise},
		{"NamesAreIndependent", leaderNames},
		{"InvalidArgumentsAreRefused", leaderInvalid},
	}
	tests.run(t, newStore)
}

// leaseWaitSlack is added to a lease's ttl before a test relies on its
// expiry: the store's clock and the test's may tick at different moments.
const leaseWaitSlack = 100 * time.Millisecond

func acquire(t *testing.T, s leader.Store, name, holder string, ttl time.Duration) leader.Lease {
	t.Helper()
	l, err := s.TryAcquire(context.Background(), name, holder, ttl)
	require.NoError(t, err)
	assert.Equal(t, name, l.Name)
	return l
}

func mustHold(t *testing.T, s leader.Store, name, holder string, ttl time.Duration) leader.Lease {
	t.Helper()
	l := acquire(t, s, name, holder, ttl)
	require.Equal(t, holder, l.Holder, "%s should hold %s", holder, name)
	return l
}

func leaderFirst(t *testing.T, s leader.Store) {
	l := mustHold(t, s, "relay", "a", time.Minute)
	assert.Positive(t, l.Token)
	assert.True(t, l.HeldBy("a", l.Token))
	assert.WithinDuration(t, time.Now().Add(time.Minute), l.Expires, 10*time.Second, "Expires is about ttl from now")
}

func leaderConcurrent(t *testing.T, s leader.Store) {
	for round := 0; round < 5; round++ {
		name := fmt.Sprintf("contended-%d", round)
		const n = 8
		var wg sync.WaitGroup
		leases := make([]leader.Lease, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				leases[i], errs[i] = s.TryAcquire(context.Background(), name, fmt.Sprintf("h%d", i), time.Minute)
			}()
		}
		close(start)
		wg.Wait()
		holders := 0
		var winner leader.Lease
		for i, l := range leases {
			require.NoError(t, errs[i])
			if l.Holder == fmt.Sprintf("h%d", i) {
				holders++
				winner = l
			}
		}
		require.Equal(t, 1, holders, "round %d: exactly one acquirer holds the lease", round)
		for i, l := range leases {
			if l.Holder != "" && l.Holder != fmt.Sprintf("h%d", i) {
				assert.Equal(t, winner.Holder, l.Holder, "a loser sees the winner")
				assert.Equal(t, winner.Token, l.Token)
			}
		}
	}
}

func leaderRenew(t *testing.T, s leader.Store) {
	const ttl = 300 * time.Millisecond
	first := mustHold(t, s, "relay", "a", ttl)
	// Renew past the first lease's end: the lease lives on in one term.
	for i := 0; i < 6; i++ {
		time.Sleep(ttl / 3)
		l := mustHold(t, s, "relay", "a", ttl)
		require.Equal(t, first.Token, l.Token, "renewal %d keeps the token", i)
		assert.False(t, l.Expires.Before(first.Expires), "renewal extends the lease")
	}
	other := acquire(t, s, "relay", "b", ttl)
	assert.Equal(t, "a", other.Holder, "the renewed lease is still held")
}

func leaderHeld(t *testing.T, s leader.Store) {
	a := mustHold(t, s, "relay", "a", time.Minute)
	b := acquire(t, s, "relay", "b", time.Minute)
	assert.Equal(t, "a", b.Holder)
	assert.Equal(t, a.Token, b.Token)
	assert.False(t, b.HeldBy("b", b.Token))
}

func leaderExpiry(t *testing.T, s leader.Store) {
	const ttl = 150 * time.Millisecond
	a := mustHold(t, s, "relay", "a", ttl)
	time.Sleep(ttl + leaseWaitSlack)
	b := mustHold(t, s, "relay", "b", time.Minute)
	assert.Greater(t, b.Token, a.Token, "the next term's token is higher")
}

func leaderRelease(t *testing.T, s leader.Store) {
	ctx := context.Background()
	a := mustHold(t, s, "relay", "a", time.Minute)
	require.NoError(t, s.Release(ctx, "relay", "a", a.Token))
	require.ErrorIs(t, s.Release(ctx, "relay", "a", a.Token), leader.ErrNotHeld, "released once")
	b := mustHold(t, s, "relay", "b", time.Minute)
	assert.Greater(t, b.Token, a.Token)
}

func leaderStaleRenew(t *testing.T, s leader.Store) {
	const ttl = 150 * time.Millisecond
	a := mustHold(t, s, "relay", "a", ttl)
	time.Sleep(ttl + leaseWaitSlack)
	b := mustHold(t, s, "relay", "b", time.Minute)
	// a comes back from a pause and tries to renew: it sees b's term.
	l := acquire(t, s, "relay", "a", ttl)
	assert.Equal(t, "b", l.Holder)
	assert.Equal(t, b.Token, l.Token)
	assert.False(t, l.HeldBy("a", a.Token))
}

func leaderStaleRelease(t *testing.T, s leader.Store) {
	ctx := context.Background()
	const ttl = 150 * time.Millisecond
	a := mustHold(t, s, "relay", "a", ttl)
	time.Sleep(ttl + leaseWaitSlack)
	b := mustHold(t, s, "relay", "b", time.Minute)
	require.ErrorIs(t, s.Release(ctx, "relay", "a", a.Token), leader.ErrNotHeld)
	require.ErrorIs(t, s.Release(ctx, "relay", "b", a.Token), leader.ErrNotHeld, "the holder with a stale token")
	l := acquire(t, s, "relay", "c", time.Minute)
	assert.Equal(t, "b", l.Holder, "b still holds the lease")
	assert.Equal(t, b.Token, l.Token)
	// An expired lease cannot be released by its last holder either.
	c := mustHold(t, s, "other", "c", ttl)
	time.Sleep(ttl + leaseWaitSlack)
	require.ErrorIs(t, s.Release(ctx, "other", "c", c.Token), leader.ErrNotHeld)
	require.ErrorIs(t, s.Release(ctx, "never", "c", 1), leader.ErrNotHeld)
}

func leaderSameHolderNewTerm(t *testing.T, s leader.Store) {
	const ttl = 150 * time.Millisecond
	a := mustHold(t, s, "relay", "a", ttl)
	time.Sleep(ttl + leaseWaitSlack)
	again := mustHold(t, s, "relay", "a", ttl)
	assert.Greater(t, again.Token, a.Token, "an expired term does not revive")
}

func leaderTokensRise(t *testing.T, s leader.Store) {
	ctx := context.Background()
	var last int64
	for i := 0; i < 10; i++ {
		h := fmt.Sprintf("h%d", i%3)
		l := mustHold(t, s, "relay", h, time.Minute)
		require.Greater(t, l.Token, last, "hand-over %d", i)
		last = l.Token
		require.NoError(t, s.Release(ctx, "relay", h, l.Token))
	}
}

func leaderNames(t *testing.T, s leader.Store) {
	a := mustHold(t, s, "relay", "a", time.Minute)
	b := mustHold(t, s, "coordinator", "b", time.Minute)
	assert.Positive(t, b.Token)
	require.NoError(t, s.Release(context.Background(), "coordinator", "b", b.Token))
	l := acquire(t, s, "relay", "b", time.Minute)
	assert.Equal(t, "a", l.Holder, "releasing one name leaves the other held")
	assert.Equal(t, a.Token, l.Token)
}

func leaderInvalid(t *testing.T, s leader.Store) {
	ctx := context.Background()
	for name, args := range map[string]struct {
		name, holder string
		ttl          time.Duration
	}{
		"EmptyName":   {"", "a", time.Second},
		"EmptyHolder": {"relay", "", time.Second},
		"ZeroTTL":     {"relay", "a", 0},
	} {
		_, err := s.TryAcquire(ctx, args.name, args.holder, args.ttl)
		assert.ErrorIs(t, err, crossbus.ErrInvalidOption, name)
	}
}
