package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
)

// sampleInstance is an instance of chain "order" with every field set.
func sampleInstance(id string) *chain.Instance {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	return &chain.Instance{ID: id, Chain: "order", Status: chain.StatusRunning, Input: json.RawMessage(`{"order":"o-1"}`),
		Outputs: map[string]json.RawMessage{"payment": json.RawMessage(`{"charge":"ch_1"}`)}, Completed: []string{"payment"},
		Step: "inventory", Attempt: 2, Phase: chain.PhaseWaiting, Due: now.Add(time.Second), Deadline: now.Add(time.Minute),
		Errors: []chain.StepError{{Step: "x", Attempt: 1, Class: "c", Message: "m"}}, Created: now, Updated: now}
}

// TestChainStore checks the chain.Store contract: instances round-trip,
// saves are guarded by the revision, unfinished instances are listed per
// chain, and step claims make (instance, step) executions exclusive and
// remember their output. newStore returns an empty store for each subtest.
func TestChainStore(t *testing.T, newStore func(t *testing.T) chain.Store) {
	tests := cases[chain.Store]{
		{"CreateLoadRoundTrip", chainCreateLoadRoundTrip},
		{"CreateTwiceIsErrExists", chainCreateTwiceIsErrExists},
		{"MissingIsErrNotFound", chainMissingIsErrNotFound},
		{"SaveNeedsTheCurrentRevision", chainSaveNeedsTheCurrentRevision},
		{"ConcurrentSavesOneWinsPerRevision", chainConcurrentSavesOneWinsPerRevision},
		{"UnfinishedListsRunningAndCompensatingOfOneChain", chainUnfinishedListsRunningAndCompensatingOfOneChain},
		{"StepClaimRunsOnceAndRemembersOutput", chainStepClaimRunsOnceAndRemembersOutput},
		{"StepKindsAndStepsAreIndependent", chainStepKindsAndStepsAreIndependent},
		{"ReleasedStepCanBeClaimedAgain", chainReleasedStepCanBeClaimedAgain},
		{"ExpiredClaimIsTakenOverAndTheOldHolderLosesIt", chainExpiredClaimIsTakenOverAndTheOldHolderLosesIt},
		{"ConcurrentClaimsExactlyOneWins", chainConcurrentClaimsExactlyOneWins},
	}
	tests.run(t, newStore)
}

func chainCreateLoadRoundTrip(t *testing.T, s chain.Store) {
	ctx := context.Background()
	in := sampleInstance("i-1")
	require.NoError(t, s.Create(ctx, in))
	assert.Equal(t, int64(1), in.Revision)
	got, err := s.Load(ctx, "i-1")
	require.NoError(t, err)
	assert.Equal(t, in.ID, got.ID)
	assert.Equal(t, in.Status, got.Status)
	assert.JSONEq(t, string(in.Input), string(got.Input))
	assert.JSONEq(t, string(in.Outputs["payment"]), string(got.Outputs["payment"]))
	assert.Equal(t, in.Completed, got.Completed)
	assert.Equal(t, in.Step, got.Step)
	assert.Equal(t, in.Attempt, got.Attempt)
	assert.Equal(t, in.Phase, got.Phase)
	assert.True(t, in.Due.Equal(got.Due))
	assert.True(t, in.Deadline.Equal(got.Deadline))
	assert.Equal(t, in.Errors, got.Errors)
	assert.Equal(t, int64(1), got.Revision)
	got.Completed[0] = "changed"
	again, err := s.Load(ctx, "i-1")
	require.NoError(t, err)
	assert.Equal(t, "payment", again.Completed[0], "Load returns a copy")
}

func chainCreateTwiceIsErrExists(t *testing.T, s chain.Store) {
	ctx := context.Background()
	require.NoError(t, s.Create(ctx, sampleInstance("i-1")))
	assert.ErrorIs(t, s.Create(ctx, sampleInstance("i-1")), chain.ErrExists)
}

func chainMissingIsErrNotFound(t *testing.T, s chain.Store) {
	ctx := context.Background()
	_, err := s.Load(ctx, "nope")
	assert.ErrorIs(t, err, chain.ErrNotFound)
	assert.ErrorIs(t, s.Save(ctx, sampleInstance("nope")), chain.ErrNotFound)
}

func chainSaveNeedsTheCurrentRevision(t *testing.T, s chain.Store) {
	ctx := context.Background()
	require.NoError(t, s.Create(ctx, sampleInstance("i-1")))
	a, err := s.Load(ctx, "i-1")
	require.NoError(t, err)
	b, err := s.Load(ctx, "i-1")
	require.NoError(t, err)
	a.Step = "shipping"
	require.NoError(t, s.Save(ctx, a))
	assert.Equal(t, int64(2), a.Revision)
	b.Step = "other"
	assert.ErrorIs(t, s.Save(ctx, b), chain.ErrStale)
	got, err := s.Load(ctx, "i-1")
	require.NoError(t, err)
	assert.Equal(t, "shipping", got.Step)
	assert.Equal(t, int64(2), got.Revision)
}

func chainConcurrentSavesOneWinsPerRevision(t *testing.T, s chain.Store) {
	ctx := context.Background()
	require.NoError(t, s.Create(ctx, sampleInstance("i-1")))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := s.Load(ctx, "i-1")
			if !assert.NoError(t, err) {
				return
			}
			inst.Attempt = 100 + g
			if s.Save(ctx, inst) == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	got, err := s.Load(ctx, "i-1")
	require.NoError(t, err)
	assert.Equal(t, int64(1)+int64(wins.Load()), got.Revision, "each win moved the revision once")
	assert.GreaterOrEqual(t, wins.Load(), int32(1))
}

func chainUnfinishedListsRunningAndCompensatingOfOneChain(t *testing.T, s chain.Store) {
	ctx := context.Background()
	for i, st := range []chain.Status{chain.StatusRunning, chain.StatusCompensating, chain.StatusCompleted, chain.StatusCompensated, chain.StatusCompensationFailed} {
		in := sampleInstance(fmt.Sprintf("i-%d", i))
		in.Status = st
		require.NoError(t, s.Create(ctx, in))
	}
	other := sampleInstance("other")
	other.Chain = "refund"
	require.NoError(t, s.Create(ctx, other))
	open, err := s.Unfinished(ctx, "order")
	require.NoError(t, err)
	var ids []string
	for _, in := range open {
		ids = append(ids, in.ID)
	}
	assert.ElementsMatch(t, []string{"i-0", "i-1"}, ids)
	// Finishing an instance takes it off the list.
	in, err := s.Load(ctx, "i-0")
	require.NoError(t, err)
	in.Status = chain.StatusCompleted
	require.NoError(t, s.Save(ctx, in))
	open, err = s.Unfinished(ctx, "order")
	require.NoError(t, err)
	require.Len(t, open, 1)
	assert.Equal(t, "i-1", open[0].ID)
}

func chainStepClaimRunsOnceAndRemembersOutput(t *testing.T, s chain.Store) {
	key := chain.StepKey{Instance: "i-1", Step: "payment"}
	ctx := context.Background()
	c, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c.Status)
	c2, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimInProgress, c2.Status)
	require.NoError(t, s.FinishStep(ctx, key, c.Token, json.RawMessage(`{"charge":"ch_9"}`)))
	c3, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimCompleted, c3.Status)
	assert.JSONEq(t, `{"charge":"ch_9"}`, string(c3.Output))
	assert.ErrorIs(t, s.FinishStep(ctx, key, c.Token, nil), crossbus.ErrLeaseLost, "finishing twice")
}

func chainStepKindsAndStepsAreIndependent(t *testing.T, s chain.Store) {
	key := chain.StepKey{Instance: "i-1", Step: "payment"}
	ctx := context.Background()
	for _, k := range []chain.StepKey{key, {Instance: "i-1", Step: "payment", Compensation: true}, {Instance: "i-1", Step: "shipping"}, {Instance: "i-2", Step: "payment"}} {
		c, err := s.BeginStep(ctx, k, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimNew, c.Status, "%+v", k)
	}
}

func chainReleasedStepCanBeClaimedAgain(t *testing.T, s chain.Store) {
	key := chain.StepKey{Instance: "i-1", Step: "payment"}
	ctx := context.Background()
	c, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	assert.ErrorIs(t, s.ReleaseStep(ctx, key, "wrong"), crossbus.ErrLeaseLost)
	require.NoError(t, s.ReleaseStep(ctx, key, c.Token))
	c2, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimNew, c2.Status)
	assert.NotEqual(t, c.Token, c2.Token)
}

func chainExpiredClaimIsTakenOverAndTheOldHolderLosesIt(t *testing.T, s chain.Store) {
	key := chain.StepKey{Instance: "i-1", Step: "payment"}
	ctx := context.Background()
	c, err := s.BeginStep(ctx, key, 150*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	c2, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c2.Status)
	assert.ErrorIs(t, s.FinishStep(ctx, key, c.Token, json.RawMessage(`1`)), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, s.ReleaseStep(ctx, key, c.Token), crossbus.ErrLeaseLost)
	require.NoError(t, s.FinishStep(ctx, key, c2.Token, json.RawMessage(`2`)))
	c3, err := s.BeginStep(ctx, key, time.Minute)
	require.NoError(t, err)
	assert.JSONEq(t, `2`, string(c3.Output))
}

func chainConcurrentClaimsExactlyOneWins(t *testing.T, s chain.Store) {
	ctx := context.Background()
	for round := 0; round < 10; round++ {
		k := chain.StepKey{Instance: fmt.Sprintf("i-%d", round), Step: "payment"}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.BeginStep(ctx, k, time.Minute)
				if assert.NoError(t, err) && c.Status == crossbus.ClaimNew {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int32(1), wins.Load(), "round %d", round)
	}
}
