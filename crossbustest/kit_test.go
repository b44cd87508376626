package crossbustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

func event(typ string, i int, key string) *crossbus.Event {
	e := crossbus.NewEvent(typ, "/kit-test")
	_ = crossbus.SetData(&e, map[string]int{"n": i})
	if key != "" {
		crossbus.SetPartitionKey(&e, key)
	}
	return &e
}

func runRouter(t *testing.T, r *crossbus.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Ready()
	require.NoError(t, r.Err())
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// A user's own router on the kit's bus is recorded: handler runs (not the
// events its filter skipped, nor duplicates its idempotency store found
// done) and every settlement.
func TestRecordsAUsersRouter(t *testing.T) {
	t.Parallel()
	kit := New(t)
	r, err := crossbus.NewRouter(kit.Bus())
	require.NoError(t, err)
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithFilter(crossbus.TypeIs("com.example.order.placed")),
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{})))
	runRouter(t, r)

	placed := event("com.example.order.placed", 1, "")
	other := event("com.example.order.viewed", 2, "")
	require.NoError(t, kit.Bus().Publish(context.Background(), "orders", placed, other, placed))
	h := kit.WaitHandled("billing", crossbus.TypeIs("com.example.order.placed"))
	assert.Equal(t, placed.ID(), h.Event.ID())
	assert.Equal(t, "orders", h.Topic)
	kit.WaitIdle()

	assert.Len(t, kit.Published("orders"), 3)
	assert.Len(t, kit.Handlings("billing"), 1, "the filtered event and the duplicate did not run the handler")
	acked := 0
	for _, s := range kit.Settlements("billing") {
		// A duplicate that arrives while its original runs is returned for
		// a later delivery (nacked), then acked as done.
		assert.Contains(t, []Outcome{Acked, Nacked}, s.Outcome)
		if s.Outcome == Acked {
			acked++
		}
	}
	assert.Equal(t, 3, acked, "every event was acked: the filtered one, the original and its duplicate")
	kit.AssertNoDeadLetters()
}

// Retries with the default policy (1s doubling backoff) and a dead letter
// after five attempts take no real time on the fake clock.
func TestRetriesAndDeadLettersRunOnTheFakeClock(t *testing.T) {
	t.Parallel()
	kit := New(t)
	r, err := crossbus.NewRouter(kit.Bus())
	require.NoError(t, err)
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return errors.New("payment service down")
	})))
	runRouter(t, r)
	start, real := kit.Clock().Now(), time.Now()
	require.NoError(t, kit.Bus().Publish(context.Background(), "orders", event("com.example.order.placed", 1, "")))
	kit.WaitIdle()
	assert.Less(t, time.Since(real), 5*time.Second)
	assert.GreaterOrEqual(t, kit.Clock().Since(start), 12*time.Second, "1s+2s+4s+8s of backoff, less jitter")
	d, ok := kit.AssertDeadLettered("billing", crossbus.TypeIs("com.example.order.placed"), "payment service down")
	require.True(t, ok)
	assert.Equal(t, 5, d.Info.Attempts)
	assert.Len(t, kit.Handlings("billing"), 5)
	nacked := 0
	for _, s := range kit.Settlements("billing") {
		if s.Outcome == Nacked {
			nacked++
			assert.Positive(t, s.Delay, "a provider-delayed redelivery")
		}
	}
	assert.Equal(t, 4, nacked)
}

// An ordered route retries in place on its clock — the kit's, since the
// route sets none — and no later event of the key overtakes the failing one.
func TestOrderedInPlaceRetriesFollowTheFakeClock(t *testing.T) {
	t.Parallel()
	kit := New(t)
	var mu sync.Mutex
	var order []int
	fails := 2
	r, err := crossbus.NewRouter(kit.Bus())
	require.NoError(t, err)
	require.NoError(t, r.Handle("orders", "shipping", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		d, _ := crossbus.DataAs[map[string]int](e)
		mu.Lock()
		defer mu.Unlock()
		if d["n"] == 0 && fails > 0 {
			fails--
			return errors.New("carrier busy")
		}
		order = append(order, d["n"])
		return nil
	}), crossbus.WithOrdering(), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Minute})))
	runRouter(t, r)
	evs := []*crossbus.Event{event("t", 0, "k"), event("t", 1, "k"), event("t", 2, "k")}
	require.NoError(t, kit.Bus().Publish(context.Background(), "orders", evs...))
	kit.WaitIdle()
	assert.Equal(t, []int{0, 1, 2}, order)
	kit.AssertNoDeadLetters()
}

// Moving the clock never reaches the lease of an event a handler holds: a
// handler slower (in real time) than the bus's quiet moment keeps its event
// while other events' retries run by.
func TestClockMovesStopShortOfAHeldLease(t *testing.T) {
	t.Parallel()
	kit := New(t, WithMemoryOptions(memoryWithLease(time.Minute)))
	var runs sync.Map
	r, err := crossbus.NewRouter(kit.Bus())
	require.NoError(t, err)
	require.NoError(t, r.Handle("jobs", "worker", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		d, _ := crossbus.DataAs[map[string]int](e)
		n, _ := runs.LoadOrStore(d["n"], new(atomic.Int32))
		attempt := n.(*atomic.Int32).Add(1)
		switch {
		case d["n"] == 0:
			time.Sleep(200 * time.Millisecond) // slow, in real time
		case attempt < 4:
			return errors.New("again") // retries 30s, 60s, 60s apart
		}
		return nil
	}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: 30 * time.Second, MaxBackoff: time.Minute, Jitter: crossbus.NoJitter})))
	runRouter(t, r)
	require.NoError(t, kit.Bus().Publish(context.Background(), "jobs", event("t", 0, ""), event("t", 1, "")))
	kit.WaitIdle()
	slow, _ := runs.Load(0)
	assert.Equal(t, int32(1), slow.(*atomic.Int32).Load(), "the slow handler's event was not redelivered under it")
	fast, _ := runs.Load(1)
	assert.Equal(t, int32(4), fast.(*atomic.Int32).Load())
}

// A wait that gives up says what it waited for and what happened.
func TestAWaitThatGivesUpReportsWhatHappened(t *testing.T) {
	t.Parallel()
	kit, err := Open(WithTimeout(200 * time.Millisecond))
	require.NoError(t, err)
	defer kit.Close(context.Background())
	_, err = kit.Bus().Subscribe(context.Background(), "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return crossbus.Permanent(errors.New("card declined"))
	}))
	require.NoError(t, err)
	require.NoError(t, kit.Bus().Publish(context.Background(), "orders", event("com.example.order.placed", 1, "")))
	_, err = kit.AwaitHandled(context.Background(), "billing", crossbus.TypeIs("com.example.order.placed"))
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`waiting for an event matching {"type":["com.example.order.placed"]} to be handled by subscription "billing"`,
		"topic orders: 1", "subscription billing of topic orders", "handler runs: 0 ok, 1 failed",
		"dead-lettered com.example.order.placed", "card declined",
	} {
		assert.Contains(t, msg, want)
	}
}

// fakeT records what the kit reports to a test.
type fakeT struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Error(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprint(args...))
}

func TestDeadLetterAssertionsReport(t *testing.T) {
	t.Parallel()
	kit := New(t)
	ft := &fakeT{}
	kit.t = ft
	_, err := kit.Bus().Subscribe(context.Background(), "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return crossbus.Permanent(errors.New("card declined"))
	}))
	require.NoError(t, err)
	require.NoError(t, kit.Bus().Publish(context.Background(), "orders", event("com.example.order.placed", 1, "")))
	require.NoError(t, kit.AwaitIdle(context.Background()))
	assert.False(t, kit.AssertNoDeadLetters())
	_, ok := kit.AssertDeadLettered("billing", nil, "card declined")
	assert.True(t, ok)
	_, ok = kit.AssertDeadLettered("billing", nil, "insufficient funds")
	assert.False(t, ok)
	require.Len(t, ft.errs, 2)
	assert.Contains(t, ft.errs[0], "1 event(s) dead-lettered, want none")
	assert.Contains(t, ft.errs[1], `with a reason containing "insufficient funds"`)
	assert.True(t, strings.Contains(ft.errs[1], "card declined"), ft.errs[1])
}

// Kits are independent: parallel tests each see only their own events.
func TestKitsInParallelTestsAreIndependent(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			kit := New(t)
			_, err := kit.Bus().Subscribe(context.Background(), "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }))
			require.NoError(t, err)
			for j := 0; j <= i; j++ {
				require.NoError(t, kit.Bus().Publish(context.Background(), "orders", event("t", j, "")))
			}
			kit.WaitIdle()
			assert.Len(t, kit.Handlings("billing"), i+1)
		})
	}
}

// On the real clock nothing moves time; the waits still work.
func TestRealClock(t *testing.T) {
	t.Parallel()
	kit := New(t, WithRealClock())
	require.Nil(t, kit.Clock())
	_, err := kit.Bus().Subscribe(context.Background(), "orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if info, _ := crossbus.DeliveryInfoFrom(ctx); info.Attempt < 2 {
			return errors.New("again")
		}
		return nil
	}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 20 * time.Millisecond}))
	require.NoError(t, err)
	require.NoError(t, kit.Bus().Publish(context.Background(), "orders", event("t", 1, "")))
	kit.WaitHandled("billing", nil)
	kit.WaitIdle()
	assert.Len(t, kit.Handlings("billing"), 2)
}

func memoryWithLease(d time.Duration) memory.Options { return memory.Options{AckDeadline: d} }
