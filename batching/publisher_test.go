package batching_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/batching"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
)

// sendLog wraps a Publisher and records the size of each send.
type sendLog struct {
	next  crossbus.Publisher
	mu    sync.Mutex
	sizes []int
	fail  error
}

func (s *sendLog) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(events))
	s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	return s.next.Publish(ctx, topic, events...)
}

func (s *sendLog) sends() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

func TestBatchPublisherOptionsAreChecked(t *testing.T) {
	b, _ := memBus(t)
	for want, o := range map[string]batching.Options{
		"MaxCount must not be negative":     {MaxCount: -1},
		"MaxBytes must not be negative":     {MaxBytes: -1},
		"Linger must not be negative":       {Linger: -time.Second},
		"FlushTimeout must not be negative": {FlushTimeout: -time.Second},
	} {
		_, err := batching.NewPublisher(b, o)
		require.ErrorIs(t, err, crossbus.ErrInvalidOption)
		assert.ErrorContains(t, err, want)
	}
	_, err := batching.NewPublisher(nil, batching.Options{})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestBatchPublisherGroupsConcurrentCallersUpToMaxCount(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(ctx, "clicks", "count", false))
	log := &sendLog{next: b}
	clk := clocktest.New(time.Time{})
	bp, err := batching.NewPublisher(log, batching.Options{MaxCount: 10, Linger: time.Hour, Clock: clk})
	require.NoError(t, err)
	defer bp.Close(ctx)

	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = bp.Publish(ctx, "clicks", mkEvents(2)...)
		}()
	}
	wg.Wait() // the tenth event filled the batch: no linger needed
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, []int{10}, log.sends(), "five callers, one send")
	st, _ := p.Stats("clicks", "count")
	assert.Equal(t, 10, st.Waiting)
}

func TestBatchPublisherSendsAfterLinger(t *testing.T) {
	ctx := testCtx(t)
	b, _ := memBus(t)
	log := &sendLog{next: b}
	clk := clocktest.New(time.Time{})
	bp, err := batching.NewPublisher(log, batching.Options{MaxCount: 100, Linger: 5 * time.Millisecond, Clock: clk})
	require.NoError(t, err)
	defer bp.Close(ctx)
	done := make(chan error, 3)
	for range 3 {
		go func() { done <- bp.Publish(ctx, "clicks", mkEvents(1)...) }()
	}
	waitUntil(t, "three callers waiting", func() bool { return bp.Pending() == 3 })
	require.NoError(t, clk.BlockUntil(ctx, 1))
	assert.Empty(t, log.sends(), "nothing sent before the linger time")
	clk.Advance(5 * time.Millisecond)
	for range 3 {
		assert.NoError(t, <-done)
	}
	assert.Equal(t, []int{3}, log.sends())
}

// Each caller gets exactly its own events' results, with indexes into its
// own slice.
func TestBatchPublisherReportsEachCallersOwnResults(t *testing.T) {
	ctx := testCtx(t)
	b, p := memBus(t)
	require.NoError(t, p.CreateSubscription(ctx, "orders", "audit", false))
	clk := clocktest.New(time.Time{})
	bp, err := batching.NewPublisher(b, batching.Options{MaxCount: 5, Linger: time.Hour, Clock: clk})
	require.NoError(t, err)
	defer bp.Close(ctx)

	good := mkEvents(4)
	noType := crossbus.NewEvent("", "/orders")
	results := make(chan struct {
		who string
		err error
	}, 2)
	go func() {
		err := bp.Publish(ctx, "orders", good[0], good[1])
		results <- struct {
			who string
			err error
		}{"a", err}
	}()
	go func() {
		err := bp.Publish(ctx, "orders", good[2], &noType, good[3])
		results <- struct {
			who string
			err error
		}{"b", err}
	}()
	for range 2 {
		r := <-results
		switch r.who {
		case "a":
			assert.NoError(t, r.err, "caller a's events were all published")
		case "b":
			var pe *crossbus.PublishError
			require.ErrorAs(t, r.err, &pe)
			assert.Equal(t, []int{1}, pe.FailedIndexes(), "the index is into caller b's own events")
			assert.Equal(t, noType.ID(), pe.Failed[0].EventID)
			assert.ErrorIs(t, r.err, crossbus.ErrInvalidEvent)
		}
	}
	st, _ := p.Stats("orders", "audit")
	assert.Equal(t, 4, st.Waiting)

	log := &sendLog{next: b, fail: errors.New("network down")}
	bp2, err := batching.NewPublisher(log, batching.Options{MaxCount: 1})
	require.NoError(t, err)
	assert.ErrorContains(t, bp2.Publish(ctx, "orders", mkEvents(1)...), "network down", "a send error reaches the caller")
}

func TestBatchPublisherWithdrawsEventsOfACancelledCaller(t *testing.T) {
	ctx := testCtx(t)
	b, _ := memBus(t)
	log := &sendLog{next: b}
	clk := clocktest.New(time.Time{})
	bp, err := batching.NewPublisher(log, batching.Options{MaxCount: 100, Linger: time.Second, Clock: clk})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() { gone <- bp.Publish(cctx, "topic", mkEvents(3)...) }()
	require.NoError(t, clk.BlockUntil(ctx, 1))
	stays := make(chan error, 1)
	go func() { stays <- bp.Publish(ctx, "topic", mkEvents(2)...) }()
	waitUntil(t, "both callers waiting", func() bool { return bp.Pending() == 5 })
	cancel()
	waitUntil(t, "withdrawn", func() bool { return bp.Pending() == 2 })
	assert.ErrorIs(t, <-gone, context.Canceled)
	require.NoError(t, bp.Close(ctx), "Close sends what is pending")
	assert.NoError(t, <-stays)
	assert.Equal(t, []int{2}, log.sends(), "the cancelled caller's events were withdrawn")
	assert.ErrorIs(t, bp.Publish(ctx, "topic", mkEvents(1)...), crossbus.ErrClosed)
}

func TestBatchPublisherBoundsBytesAndKeepsACallersEventsTogether(t *testing.T) {
	ctx := testCtx(t)
	b, _ := memBus(t)
	log := &sendLog{next: b}
	one := driver.EncodedSize(mkEvents(1)[0])
	bp, err := batching.NewPublisher(log, batching.Options{MaxCount: 3, MaxBytes: 2 * one, Linger: time.Hour})
	require.NoError(t, err)
	defer bp.Close(ctx)
	require.NoError(t, bp.Publish(ctx, "topic", mkEvents(2)...), "reaches MaxBytes: sent at once")
	require.NoError(t, bp.Publish(ctx, "topic", mkEvents(5)...), "more than MaxCount: sent whole")
	assert.Equal(t, []int{2, 5}, log.sends())
	assert.NoError(t, bp.Publish(ctx, "topic"), "nothing to publish")
	assert.ErrorIs(t, bp.Publish(ctx, "", mkEvents(1)...), crossbus.ErrInvalidOption)
}
