package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/sequence"
)

// TestSequenceStore checks the sequence.Store contract. newStore
// returns an empty store for each subtest.
//
// The guarantees, one subtest each: an unknown key's last sequence is 0;
// Advance stores a higher sequence and reports it; a lower or equal one is
// refused and changes nothing; keys are independent and may hold any
// printable text; concurrent advances of a key keep the highest.
func TestSequenceStore(t *testing.T, newStore func(t *testing.T) sequence.Store) {
	tests := cases[sequence.Store]{
		{"UnknownKeyIsZero", seqUnknown},
		{"AdvanceStoresAHigherSequence", seqAdvance},
		{"LowerOrEqualSequenceIsRefused", seqStale},
		{"KeysAreIndependent", seqKeys},
		{"ConcurrentAdvancesKeepTheHighest", seqConcurrent},
	}
	tests.run(t, newStore)
}

func lastSeq(t *testing.T, s sequence.Store, key string) uint64 {
	t.Helper()
	n, err := s.Last(context.Background(), key)
	require.NoError(t, err)
	return n
}

func advance(t *testing.T, s sequence.Store, key string, seq uint64) bool {
	t.Helper()
	ok, err := s.Advance(context.Background(), key, seq)
	require.NoError(t, err)
	return ok
}

func seqUnknown(t *testing.T, s sequence.Store) {
	assert.Zero(t, lastSeq(t, s, "nobody"))
}

func seqAdvance(t *testing.T, s sequence.Store) {
	assert.True(t, advance(t, s, "k", 1))
	assert.True(t, advance(t, s, "k", 5), "gaps are allowed")
	assert.Equal(t, uint64(5), lastSeq(t, s, "k"))
}

func seqStale(t *testing.T, s sequence.Store) {
	require.True(t, advance(t, s, "k", 7))
	assert.False(t, advance(t, s, "k", 7))
	assert.False(t, advance(t, s, "k", 3))
	assert.Equal(t, uint64(7), lastSeq(t, s, "k"))
}

func seqKeys(t *testing.T, s sequence.Store) {
	keys := []string{"a", "b", "seller-42/ü ' % _"}
	for i, k := range keys {
		require.True(t, advance(t, s, k, uint64(10*(i+1))))
	}
	for i, k := range keys {
		assert.Equal(t, uint64(10*(i+1)), lastSeq(t, s, k))
	}
}

func seqConcurrent(t *testing.T, s sequence.Store) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 20; i++ {
				if _, err := s.Advance(context.Background(), "k", uint64(i*8+g)); err != nil {
					assert.NoError(t, err, fmt.Sprintf("writer %d", g))
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, uint64(20*8+7), lastSeq(t, s, "k"))
}
