package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/patterns/sourcing"
)

// The concurrency guarantees of TestEventStore.

func testConcurrentOneStream(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	const writers, target = 8, 40
	var mu sync.Mutex
	wins := map[uint64]int{} // version -> winning appends
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := s.StreamVersion(ctx, "contended")
				if err != nil {
					errs <- err
					return
				}
				if v >= target {
					return
				}
				res, err := s.Append(ctx, "contended", sourcing.Exactly(v), NewTestEvent("e", map[string]int{"writer": w}))
				var ce *sourcing.ConflictError
				switch {
				case errors.As(err, &ce):
					if ce.Actual == v {
						errs <- fmt.Errorf("conflict at version %d reports actual %d", v, ce.Actual)
						return
					}
				case err != nil:
					errs <- err
					return
				default:
					mu.Lock()
					wins[res.Version]++
					mu.Unlock()
					if res.Version != v+1 {
						errs <- fmt.Errorf("append expecting %d ended at version %d", v, res.Version)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	recs, err := sourcing.Collect(s.ReadStream(ctx, "contended", 1))
	require.NoError(t, err)
	require.Len(t, recs, target)
	for v := uint64(1); v <= target; v++ {
		assert.Equal(t, 1, wins[v], "version %d won by exactly one appender", v)
		assert.Equal(t, v, recs[v-1].Version)
	}
}

func testGlobalOrder(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	const writers, appends, batch = 6, 25, 3
	total := writers * appends * batch
	type span struct{ first, last uint64 }
	spans := make([][]span, writers)

	// A reader tails the log while the writers append: it reads from after
	// the last position it saw. If a lower position could commit after a
	// higher one was visible, the tail would skip it.
	tailDone := make(chan []uint64)
	stop := make(chan struct{})
	go func() {
		var seen []uint64
		next := uint64(1)
		for {
			for r, err := range s.ReadAll(ctx, next) {
				if err != nil {
					break
				}
				seen = append(seen, r.Position)
				next = r.Position + 1
			}
			select {
			case <-stop:
				for r, err := range s.ReadAll(ctx, next) {
					if err != nil {
						break
					}
					seen = append(seen, r.Position)
				}
				tailDone <- seen
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("writer-%d", w)
			for i := 0; i < appends; i++ {
				res, err := s.Append(ctx, stream, sourcing.Any, events(batch, "e")...)
				if err != nil {
					errs <- err
					return
				}
				spans[w] = append(spans[w], span{res.FirstPosition, res.LastPosition})
			}
		}()
	}
	wg.Wait()
	close(stop)
	seen := <-tailDone
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	recs, err := sourcing.Collect(s.ReadAll(ctx, 1))
	require.NoError(t, err)
	require.Len(t, recs, total)
	for i, r := range recs {
		require.Equal(t, uint64(i+1), r.Position, "positions are gap-free")
	}
	// Each append's events sit at consecutive positions, and a writer's later
	// append sits after its earlier one (commit order).
	for w, ss := range spans {
		for i, sp := range ss {
			assert.Equal(t, uint64(batch-1), sp.last-sp.first, "writer %d append %d is contiguous", w, i)
			if i > 0 {
				assert.Greater(t, sp.first, ss[i-1].last, "writer %d append %d after its previous one", w, i)
			}
			for p := sp.first; p <= sp.last; p++ {
				assert.Equal(t, fmt.Sprintf("writer-%d", w), recs[p-1].Stream)
			}
		}
	}
	// Per stream, versions rise with positions.
	last := map[string]uint64{}
	for _, r := range recs {
		assert.Equal(t, last[r.Stream]+1, r.Version, "stream %s at position %d", r.Stream, r.Position)
		last[r.Stream] = r.Version
	}
	// The tailing reader saw every position exactly once, in order.
	require.Len(t, seen, total, "the tailing reader saw every event")
	assert.True(t, sort.SliceIsSorted(seen, func(i, j int) bool { return seen[i] < seen[j] }))
	for i, p := range seen {
		if p != uint64(i+1) {
			t.Fatalf("tailing reader saw position %d at index %d", p, i)
		}
	}
}
