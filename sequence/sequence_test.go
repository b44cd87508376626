package sequence_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/sequence"
)

func TestSequenceFormatIsLexicallyOrdered(t *testing.T) {
	assert.Equal(t, "00000000000000000042", sequence.Format(42))
	assert.Equal(t, "18446744073709551615", sequence.Format(1<<64-1))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		a, b := rng.Uint64N(1<<40), rng.Uint64N(1<<40)
		fa, fb := sequence.Format(a), sequence.Format(b)
		assert.Len(t, fa, sequence.Digits)
		assert.Equal(t, a < b, fa < fb, "%d vs %d", a, b)
		back, err := sequence.Parse(fa)
		require.NoError(t, err)
		assert.Equal(t, a, back)
	}
	_, err := sequence.Parse("12a")
	assert.ErrorIs(t, err, crossbus.ErrInvalidData)
}

func TestSequencerStampsPerKey(t *testing.T) {
	s := sequence.NewStamper()
	mk := func(key string) *crossbus.Event {
		e := crossbus.NewEvent("t", "/s")
		if key != "" {
			crossbus.SetPartitionKey(&e, key)
		}
		return &e
	}
	a1, b1, a2, none := mk("a"), mk("b"), mk("a"), mk("")
	s.Stamp(a1, b1, a2, none)
	seqOf := func(e *crossbus.Event) uint64 {
		n, ok, err := sequence.Of(e)
		require.NoError(t, err)
		require.True(t, ok)
		return n
	}
	assert.Equal(t, []uint64{1, 1, 2, 1}, []uint64{seqOf(a1), seqOf(b1), seqOf(a2), seqOf(none)})
	assert.Equal(t, "00000000000000000002", crossbus.ExtensionString(a2, crossbus.ExtSequence))
	assert.Equal(t, uint64(2), s.Last("a"))

	s.Seed("a", 1000) // a restarted producer resumes
	a3 := mk("a")
	s.Stamp(a3)
	assert.Equal(t, uint64(1001), seqOf(a3))

	_, ok, err := sequence.Of(mk("x"))
	assert.False(t, ok)
	assert.NoError(t, err)
	bad := mk("x")
	bad.SetExtension(crossbus.ExtSequence, "first")
	_, _, err = sequence.Of(bad)
	assert.ErrorIs(t, err, crossbus.ErrInvalidData)

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); s.Stamp(mk("c")) }()
	}
	wg.Wait()
	assert.Equal(t, uint64(8), s.Last("c"), "concurrent stamps never repeat a number")
}

func seqEvent(key string, seq uint64) *crossbus.Event {
	e := crossbus.NewEvent("com.example.price", "/prices")
	crossbus.SetPartitionKey(&e, key)
	e.SetExtension(crossbus.ExtSequence, sequence.Format(seq))
	e.SetSubject(fmt.Sprintf("%s#%d", key, seq))
	return &e
}

func TestLatestWinsSkipsStaleUpdates(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	store := sequence.NewMemoryStore()
	lw, err := sequence.LatestWins(store)
	require.NoError(t, err)
	var mu sync.Mutex
	var applied []string
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "cache", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		applied = append(applied, e.Subject())
		mu.Unlock()
		return nil
	}), crossbus.WithMiddleware(lw), crossbus.WithConcurrency(1), crossbus.WithPrefetch(1), quick(2)))
	runRouter(t, r)

	unsequenced := crossbus.NewEvent("com.example.price", "/prices")
	unsequenced.SetSubject("no sequence")
	malformed := seqEvent("a", 0)
	malformed.SetExtension(crossbus.ExtSequence, "soon")
	require.NoError(t, b.Publish(ctx, "prices",
		seqEvent("a", 1), seqEvent("a", 3), seqEvent("a", 2), seqEvent("b", 5), seqEvent("a", 3), &unsequenced, malformed))
	waitUntil(t, "settled", settled(p, "prices", "cache"))
	assert.Equal(t, []string{"a#1", "a#3", "b#5", "no sequence"}, applied, "a#2 arrived after a#3 and the duplicate a#3 were skipped")
	last, _ := store.Last(ctx, "a")
	assert.Equal(t, uint64(3), last)
	dead, _ := p.DeadLetters("prices", "cache")
	require.Len(t, dead, 1, "a malformed sequence is dead-lettered")
	assert.Equal(t, malformed.ID(), dead[0].ID())

	_, err = sequence.LatestWins(nil)
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

// Concurrent handlers of one key never let an older update overwrite a newer
// one within a process.
func TestLatestWinsUnderConcurrency(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	lw, err := sequence.LatestWins(sequence.NewMemoryStore())
	require.NoError(t, err)
	var state atomic.Uint64 // the "cache": last applied sequence
	var regressions atomic.Int32
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "cache", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		n, _, _ := sequence.Of(e)
		if prev := state.Swap(n); prev > n {
			regressions.Add(1)
		}
		return nil
	}), crossbus.WithMiddleware(lw), crossbus.WithConcurrency(8), crossbus.WithPrefetch(1)))
	runRouter(t, r)
	evs := make([]*crossbus.Event, 200)
	for i := range evs {
		evs[i] = seqEvent("a", uint64(i+1))
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	require.NoError(t, b.Publish(ctx, "prices", evs...))
	waitUntil(t, "settled", settled(p, "prices", "cache"))
	assert.Zero(t, regressions.Load())
	assert.Equal(t, uint64(200), state.Load(), "the newest update is the state")
}
