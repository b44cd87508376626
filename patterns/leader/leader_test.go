package leader_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/stores/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.TestLeaderStore(t, func(t *testing.T) leader.Store { return leader.NewMemoryStore() })
}

// flaky wraps a store; while down is set every call fails.
type flaky struct {
	leader.Store
	down atomic.Bool
}

var errDown = errors.New("store unreachable")

func (f *flaky) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	if f.down.Load() {
		return leader.Lease{}, errDown
	}
	return f.Store.TryAcquire(ctx, name, holder, ttl)
}

func (f *flaky) Release(ctx context.Context, name, holder string, token int64) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Release(ctx, name, holder, token)
}

// term records one replica's time as leader.
type term struct {
	holder     string
	token      int64
	start, end time.Time
}

type terms struct {
	mu  sync.Mutex
	all []term
	now chan term // each start
}

func (ts *terms) fn(holder string) func(ctx context.Context, l leader.Lease) error {
	return func(ctx context.Context, l leader.Lease) error {
		got, ok := leader.LeaseFrom(ctx)
		if !ok || got != l {
			return errors.New("the context does not carry the lease")
		}
		tm := term{holder: holder, token: l.Token, start: time.Now()}
		select {
		case ts.now <- tm:
		default:
		}
		<-ctx.Done()
		tm.end = time.Now()
		ts.mu.Lock()
		ts.all = append(ts.all, tm)
		ts.mu.Unlock()
		return ctx.Err()
	}
}

func TestRunHandsOverWhenTheLeaderStops(t *testing.T) {
	store := leader.NewMemoryStore()
	ts := &terms{now: make(chan term, 10)}
	opts := func(h string) leader.Options {
		return leader.Options{Holder: h, TTL: 300 * time.Millisecond}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- leader.Run(ctxA, store, "relay", opts("a"), ts.fn("a")) }()
	first := <-ts.now
	require.Equal(t, "a", first.holder)

	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneB := make(chan error, 1)
	go func() { doneB <- leader.Run(ctxB, store, "relay", opts("b"), ts.fn("b")) }()
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, "a", store.Current("relay").Holder, "a keeps the lease by renewing it")

	stopA()
	require.NoError(t, <-doneA)
	stopped := time.Now()
	select {
	case second := <-ts.now:
		assert.Equal(t, "b", second.holder)
		assert.Greater(t, second.token, first.token)
		assert.Less(t, time.Since(stopped), 300*time.Millisecond, "a released the lease: b takes it at its next try (ttl/3)")
	case <-time.After(2 * time.Second):
		t.Fatal("b never took over")
	}
	stopB()
	require.NoError(t, <-doneB)
	assert.Empty(t, store.Current("relay").Holder, "released on stop")
}

// TestRunCancelsWhenRenewalsFail: a leader cut off from the store cancels
// its function's context before its lease can have expired in the store,
// and the other replica takes over only after that.
func TestRunCancelsWhenRenewalsFail(t *testing.T) {
	mem := leader.NewMemoryStore()
	fa := &flaky{Store: mem}
	ts := &terms{now: make(chan term, 10)}
	const ttl = 400 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = leader.Run(ctx, fa, "relay", leader.Options{Holder: "a", TTL: ttl}, ts.fn("a"))
	}()
	first := <-ts.now
	go func() {
		defer wg.Done()
		_ = leader.Run(ctx, mem, "relay", leader.Options{Holder: "b", TTL: ttl}, ts.fn("b"))
	}()
	time.Sleep(ttl)
	fa.down.Store(true) // a's renewals fail from now on
	cut := time.Now()
	var second term
	select {
	case second = <-ts.now:
	case <-time.After(5 * time.Second):
		t.Fatal("b never took over")
	}
	assert.Equal(t, "b", second.holder)
	assert.Greater(t, second.token, first.token)
	assert.Less(t, second.start.Sub(cut), ttl+ttl/3+200*time.Millisecond, "hand-over within ttl + retry interval")
	ts.mu.Lock()
	var endA time.Time
	for _, tm := range ts.all {
		if tm.holder == "a" {
			endA = tm.end
		}
	}
	ts.mu.Unlock()
	require.False(t, endA.IsZero(), "a's function was cancelled")
	assert.True(t, endA.Before(second.start), "a stopped (at %v) before b started (at %v): no overlap", endA.Sub(cut), second.start.Sub(cut))
	cancel()
	wg.Wait()
}

// TestRunCancelsAtOnceWhenTheLeaseMoved: a renewal that finds another
// holder cancels at once.
func TestRunCancelsAtOnceWhenTheLeaseMoved(t *testing.T) {
	mem := leader.NewMemoryStore()
	ts := &terms{now: make(chan term, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- leader.Run(ctx, &stealing{MemoryStore: mem}, "relay", leader.Options{Holder: "a", TTL: 300 * time.Millisecond}, ts.fn("a"))
	}()
	<-ts.now
	select {
	case <-time.After(2 * time.Second):
		t.Fatal("a's function was not cancelled")
	case <-func() chan struct{} {
		ch := make(chan struct{})
		go func() {
			for {
				ts.mu.Lock()
				n := len(ts.all)
				ts.mu.Unlock()
				if n > 0 {
					close(ch)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		return ch
	}():
	}
	cancel()
	require.NoError(t, <-done)
}

// stealing hands the lease to "thief" at the first renewal.
type stealing struct {
	*leader.MemoryStore
	once sync.Once
}

func (s *stealing) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	cur := s.Current(name)
	if cur.Holder == holder {
		stolen := false
		s.once.Do(func() {
			_ = s.Release(ctx, name, holder, cur.Token)
			_, _ = s.MemoryStore.TryAcquire(ctx, name, "thief", time.Minute)
			stolen = true
		})
		if stolen {
			return s.MemoryStore.TryAcquire(ctx, name, holder, ttl)
		}
	}
	return s.MemoryStore.TryAcquire(ctx, name, holder, ttl)
}

func TestRunReturnsTheFunctionsErrorAndReleases(t *testing.T) {
	mem := leader.NewMemoryStore()
	boom := errors.New("boom")
	err := leader.Run(context.Background(), mem, "relay", leader.Options{Holder: "a", TTL: time.Second},
		func(ctx context.Context, l leader.Lease) error { return boom })
	require.ErrorIs(t, err, boom)
	assert.Empty(t, mem.Current("relay").Holder)
}

func TestRunValidatesOptions(t *testing.T) {
	ctx := context.Background()
	fn := func(context.Context, leader.Lease) error { return nil }
	mem := leader.NewMemoryStore()
	for name, tc := range map[string]struct {
		store leader.Store
		name  string
		opts  leader.Options
	}{
		"NilStore":    {nil, "x", leader.Options{}},
		"EmptyName":   {mem, "", leader.Options{}},
		"NegativeTTL": {mem, "x", leader.Options{TTL: -1}},
		"HugeMargin":  {mem, "x", leader.Options{TTL: time.Second, SafetyMargin: time.Second}},
	} {
		err := leader.Run(ctx, tc.store, tc.name, tc.opts, fn)
		assert.ErrorIs(t, err, crossbus.ErrInvalidOption, name)
	}
}

// TestRunNeverOverlaps runs several replicas whose store fails at random
// and checks that no two terms overlap in time.
func TestRunNeverOverlaps(t *testing.T) {
	mem := leader.NewMemoryStore()
	ts := &terms{now: make(chan term, 100)}
	const ttl = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range []string{"a", "b", "c"} {
		f := &flaky{Store: mem}
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = leader.Run(ctx, f, "relay", leader.Options{Holder: h, TTL: ttl}, ts.fn(h))
		}()
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				time.Sleep(time.Duration(100+len(h)*37) * time.Millisecond)
				f.down.Store(!f.down.Load())
			}
		}()
	}
	wg.Wait()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	require.GreaterOrEqual(t, len(ts.all), 2, "leadership moved at least once")
	for i, a := range ts.all {
		for _, b := range ts.all[i+1:] {
			overlap := a.start.Before(b.end) && b.start.Before(a.end)
			assert.False(t, overlap, "terms %+v and %+v overlap", a, b)
			// A replica whose renewals failed gives up its term locally
			// and may take the still-live lease back in the same term; a
			// term of another holder always has a token of its own.
			if a.holder != b.holder && a.token == b.token {
				t.Errorf("terms of %s and %s share token %d", a.holder, b.holder, a.token)
			}
			if a.holder != b.holder && (a.start.Before(b.start) != (a.token < b.token)) {
				t.Errorf("tokens do not rise with time: %+v, %+v", a, b)
			}
		}
	}
}
