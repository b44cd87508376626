package sequence_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/sequence"
)

// applyLog records, per key, the sequences a handler saw and the gap notices
// it got.
type applyLog struct {
	mu   sync.Mutex
	seqs map[string][]uint64
	gaps []sequence.GapInfo
}

func newApplyLog() *applyLog { return &applyLog{seqs: map[string][]uint64{}} }

func (l *applyLog) handler() crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		n, _, _ := sequence.Of(e)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.seqs[crossbus.PartitionKey(e)] = append(l.seqs[crossbus.PartitionKey(e)], n)
		if g, ok := sequence.GapFrom(ctx); ok {
			l.gaps = append(l.gaps, g)
		}
		return nil
	})
}

func (l *applyLog) of(key string) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint64(nil), l.seqs[key]...)
}

func (l *applyLog) gapNotices() []sequence.GapInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sequence.GapInfo(nil), l.gaps...)
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestResequenceOptionsAreChecked(t *testing.T) {
	_, err := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: -1})
	assert.ErrorContains(t, err, "GapTimeout must not be negative")
	_, err = sequence.Resequence(sequence.ResequenceOptions{MaxBuffered: -1})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

// The required scenario: a shuffled stream of two keys comes out in
// sequence order per key.
func TestResequenceRestoresOrderFromAShuffledStream(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{}) // never advanced: no gap is ever given up on
	reseq, err := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: time.Minute})
	require.NoError(t, err)
	log := newApplyLog()
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "ledger", log.handler(), crossbus.WithMiddleware(reseq), crossbus.WithClock(clk),
		crossbus.WithPrefetch(1), crossbus.WithConcurrency(32)))
	runRouter(t, r)

	var evs []*crossbus.Event
	for i := uint64(1); i <= 15; i++ {
		evs = append(evs, seqEvent("a", i), seqEvent("b", i))
	}
	rand.New(rand.NewPCG(7, 8)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	require.NoError(t, b.Publish(ctx, "prices", evs...))
	waitUntil(t, "settled", settled(p, "prices", "ledger"))
	assert.Equal(t, seqRange(1, 15), log.of("a"))
	assert.Equal(t, seqRange(1, 15), log.of("b"))
	assert.Empty(t, log.gapNotices())
}

// The required scenario: a sequence number that never arrives. After the gap
// timeout the later events are released in order, the first with a gap
// notice; the missing event, arriving late, is acked without running.
func TestResequenceReleasesPastAPermanentGapWithANotice(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	reseq, err := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: time.Minute})
	require.NoError(t, err)
	log := newApplyLog()
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "ledger", log.handler(), crossbus.WithMiddleware(reseq), crossbus.WithClock(clk),
		crossbus.WithPrefetch(1), crossbus.WithConcurrency(8)))
	runRouter(t, r)

	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 5), seqEvent("a", 1), seqEvent("a", 4), seqEvent("a", 2)))
	waitUntil(t, "1 and 2 handled", func() bool { return len(log.of("a")) == 2 })
	require.NoError(t, clk.BlockUntil(ctx, 1), "4 and 5 wait for 3")
	clk.Advance(59 * time.Second)
	require.NoError(t, clk.BlockUntil(ctx, 1))
	assert.Equal(t, []uint64{1, 2}, log.of("a"), "still waiting")

	clk.Advance(time.Second)
	waitUntil(t, "released", func() bool { return len(log.of("a")) == 4 })
	assert.Equal(t, []uint64{1, 2, 4, 5}, log.of("a"))
	require.Equal(t, []sequence.GapInfo{{Key: "a", Expected: 3, Got: 4, Waited: time.Minute}}, log.gapNotices(),
		"only the first event after the gap carries the notice")
	assert.Equal(t, uint64(1), log.gapNotices()[0].Missing())

	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 3), seqEvent("a", 6)))
	waitUntil(t, "settled", settled(p, "prices", "ledger"))
	assert.Equal(t, []uint64{1, 2, 4, 5, 6}, log.of("a"), "the late 3 was acked without running")
	dead, _ := p.DeadLetters("prices", "ledger")
	assert.Empty(t, dead)
}

// The gap timeout does not give up on an expected event that is being
// handled: its successor waits for it.
func TestResequenceWaitsForARunningPredecessor(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	reseq, err := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: time.Second})
	require.NoError(t, err)
	log := newApplyLog()
	started, proceed := make(chan struct{}), make(chan struct{})
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "ledger", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if n, _, _ := sequence.Of(e); n == 1 {
			close(started)
			<-proceed
		}
		return log.handler().Handle(ctx, e)
	}), crossbus.WithMiddleware(reseq), crossbus.WithClock(clk), crossbus.WithPrefetch(1), crossbus.WithConcurrency(4)))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 1)))
	<-started
	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 2)))
	require.NoError(t, clk.BlockUntil(ctx, 1))
	clk.Advance(5 * time.Second)
	require.NoError(t, clk.BlockUntil(ctx, 1), "the timer is re-armed")
	assert.Empty(t, log.of("a"))
	close(proceed)
	waitUntil(t, "settled", settled(p, "prices", "ledger"))
	assert.Equal(t, []uint64{1, 2}, log.of("a"))
	assert.Empty(t, log.gapNotices())
}

// Events beyond MaxBuffered per key go back to the provider and come again
// later; none is lost or dead-lettered.
func TestResequenceBufferIsBounded(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	reseq, err := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: time.Hour, MaxBuffered: 1})
	require.NoError(t, err)
	log := newApplyLog()
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "ledger", log.handler(), crossbus.WithMiddleware(reseq), crossbus.WithClock(clk), quick(2),
		crossbus.WithPrefetch(1), crossbus.WithConcurrency(4)))
	runRouter(t, r)
	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 3), seqEvent("a", 4), seqEvent("a", 5)))
	waitUntil(t, "one waits, the others were returned", func() bool {
		st, _ := p.Stats("prices", "ledger")
		return st.Delayed > 0
	})
	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 2), seqEvent("a", 1)))
	waitUntil(t, "settled", settled(p, "prices", "ledger"))
	assert.Equal(t, seqRange(1, 5), log.of("a"))
	dead, _ := p.DeadLetters("prices", "ledger")
	assert.Empty(t, dead, "a full buffer never spends the retry policy's attempts")
}

// A waiting event's predecessor cannot arrive once the subscription stops
// receiving: shutdown returns it to the provider instead of waiting out the
// gap timeout or the drain timeout.
func TestResequenceReturnsWaitingEventsOnShutdown(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	clk := clocktest.New(time.Time{})
	reseq, err := sequence.Resequence(sequence.ResequenceOptions{GapTimeout: time.Hour})
	require.NoError(t, err)
	log := newApplyLog()
	r := newRouter(t, b)
	require.NoError(t, r.Handle("prices", "ledger", log.handler(), crossbus.WithMiddleware(reseq), crossbus.WithClock(clk),
		crossbus.WithPrefetch(1), crossbus.WithDrainTimeout(time.Minute)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	<-r.Ready()
	require.NoError(t, b.Publish(ctx, "prices", seqEvent("a", 2)))
	require.NoError(t, clk.BlockUntil(ctx, 1), "2 waits for 1")
	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("shutdown waited for the waiting event")
	}
	st, _ := p.Stats("prices", "ledger")
	assert.Equal(t, 1, st.Waiting+st.Delayed, "the event is back in the provider")
	assert.Empty(t, log.of("a"))
	dead, _ := p.DeadLetters("prices", "ledger")
	assert.Empty(t, dead)
}
