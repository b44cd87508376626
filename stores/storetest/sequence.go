package storetest

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// TestSequenceStore checks the crossbus.SequenceStore contract that
// LatestWins and Resequence rely on: a key's last applied sequence only ever
// rises, Advance reports whether it stored the sequence, every uint64 keeps
// all its digits, and of concurrent Advances exactly the highest sequence
// remains. newStore returns an empty store for each subtest.
func TestSequenceStore(t *testing.T, newStore func(t *testing.T) crossbus.SequenceStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s crossbus.SequenceStore)
	}{
		{"MissingKeyIsZero", seqMissing},
		{"AdvanceStoresAHigherSequence", seqAdvance},
		{"AdvanceNeverGoesBack", seqNeverBack},
		{"KeysAreIndependent", seqKeysIndependent},
		{"KeysMayHoldAnyBytes", seqKeyBytes},
		{"LargeSequencesKeepEveryDigit", seqLarge},
		{"ConcurrentAdvancesKeepTheHighest", seqConcurrent},
		{"ConcurrentAdvancesToOneSequenceExactlyOneStores", seqConcurrentSame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func mustLast(t *testing.T, s crossbus.SequenceStore, key string) uint64 {
	t.Helper()
	n, err := s.Last(context.Background(), key)
	require.NoError(t, err)
	return n
}

func mustAdvance(t *testing.T, s crossbus.SequenceStore, key string, seq uint64) bool {
	t.Helper()
	ok, err := s.Advance(context.Background(), key, seq)
	require.NoError(t, err)
	return ok
}

func seqMissing(t *testing.T, s crossbus.SequenceStore) {
	assert.Zero(t, mustLast(t, s, "order-1"))
	assert.Zero(t, mustLast(t, s, ""), "the empty key (events without a partition key)")
}

func seqAdvance(t *testing.T, s crossbus.SequenceStore) {
	assert.True(t, mustAdvance(t, s, "order-1", 1))
	assert.Equal(t, uint64(1), mustLast(t, s, "order-1"))
	assert.True(t, mustAdvance(t, s, "order-1", 5), "gaps are allowed")
	assert.Equal(t, uint64(5), mustLast(t, s, "order-1"))
	assert.True(t, mustAdvance(t, s, "", 3), "the empty key is a key")
	assert.Equal(t, uint64(3), mustLast(t, s, ""))
}

func seqNeverBack(t *testing.T, s crossbus.SequenceStore) {
	require.True(t, mustAdvance(t, s, "k", 10))
	assert.False(t, mustAdvance(t, s, "k", 10), "the same sequence again")
	assert.False(t, mustAdvance(t, s, "k", 9), "an older sequence")
	assert.False(t, mustAdvance(t, s, "k", 1))
	assert.Equal(t, uint64(10), mustLast(t, s, "k"))
	assert.True(t, mustAdvance(t, s, "k", 11))
	assert.Equal(t, uint64(11), mustLast(t, s, "k"))
}

func seqKeysIndependent(t *testing.T, s crossbus.SequenceStore) {
	for i := 1; i <= 10; i++ {
		require.True(t, mustAdvance(t, s, fmt.Sprintf("key-%d", i), uint64(i*100)))
	}
	for i := 1; i <= 10; i++ {
		assert.Equal(t, uint64(i*100), mustLast(t, s, fmt.Sprintf("key-%d", i)))
	}
	assert.Zero(t, mustLast(t, s, "key-11"))
}

func seqKeyBytes(t *testing.T, s crossbus.SequenceStore) {
	keys := []string{"a\x00b", "{tenant}:order/1", "ü-%_*'\"", "a\x00c", string([]byte{0xff, 0xfe})}
	for i, k := range keys {
		require.True(t, mustAdvance(t, s, k, uint64(i+1)), "key %q", k)
	}
	for i, k := range keys {
		assert.Equal(t, uint64(i+1), mustLast(t, s, k), "key %q", k)
	}
}

func seqLarge(t *testing.T, s crossbus.SequenceStore) {
	// Above 2^53 a float64 (a Lua or JSON number) loses digits; sequences
	// are uint64 and must compare exactly.
	const big = uint64(1) << 53
	require.True(t, mustAdvance(t, s, "k", big))
	assert.True(t, mustAdvance(t, s, "k", big+1), "2^53+1 is after 2^53")
	assert.Equal(t, big+1, mustLast(t, s, "k"))
	assert.False(t, mustAdvance(t, s, "k", big+1))
	assert.True(t, mustAdvance(t, s, "k", math.MaxUint64-1))
	assert.True(t, mustAdvance(t, s, "k", math.MaxUint64))
	assert.Equal(t, uint64(math.MaxUint64), mustLast(t, s, "k"))
	assert.False(t, mustAdvance(t, s, "k", math.MaxUint64-1))
	// Numbers of different lengths compare as numbers, not as text.
	require.True(t, mustAdvance(t, s, "short", 9))
	assert.True(t, mustAdvance(t, s, "short", 10))
	assert.False(t, mustAdvance(t, s, "short", 9))
	assert.Equal(t, uint64(10), mustLast(t, s, "short"))
}

func seqConcurrent(t *testing.T, s crossbus.SequenceStore) {
	const writers, per = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	var stored []uint64
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				seq := uint64(i*writers + w + 1) // every writer climbs, interleaved with the others
				ok, err := s.Advance(context.Background(), "contended", seq)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					mu.Lock()
					stored = append(stored, seq)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(writers*per), mustLast(t, s, "contended"), "the highest sequence remains")
	// No sequence was reported stored twice.
	sort.Slice(stored, func(i, j int) bool { return stored[i] < stored[j] })
	for i := 1; i < len(stored); i++ {
		assert.NotEqual(t, stored[i-1], stored[i], "sequence %d stored twice", stored[i])
	}
	assert.Contains(t, stored, uint64(writers*per))
}

func seqConcurrentSame(t *testing.T, s crossbus.SequenceStore) {
	for round := 1; round <= 10; round++ {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.Advance(context.Background(), "same", uint64(round))
				if assert.NoError(t, err) && ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int32(1), wins.Load(), "round %d: exactly one Advance stores the sequence", round)
	}
}
