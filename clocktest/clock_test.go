package clocktest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/clocktest"
)

func TestAdvanceFiresDueTimersInOrder(t *testing.T) {
	clk := clocktest.New(time.Time{})
	start := clk.Now()
	assert.Equal(t, clocktest.Epoch, start)

	var mu sync.Mutex
	var order []string
	var seenAt []time.Duration
	record := func(name string) func() {
		return func() {
			mu.Lock()
			order = append(order, name)
			seenAt = append(seenAt, clk.Since(start))
			mu.Unlock()
		}
	}
	clk.AfterFunc(3*time.Second, record("c"))
	clk.AfterFunc(time.Second, record("a"))
	clk.AfterFunc(2*time.Second, record("b"))
	late := clk.NewTimer(10 * time.Second)
	assert.Equal(t, 4, clk.Timers())
	next, ok := clk.Next()
	require.True(t, ok)
	assert.Equal(t, start.Add(time.Second), next)

	clk.Advance(2 * time.Second)
	assert.Equal(t, []string{"a", "b"}, order, "AfterFunc runs before Advance returns")
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, seenAt, "Now reads each timer's due time while it fires")
	assert.Equal(t, 2*time.Second, clk.Since(start))
	select {
	case <-late.C():
		t.Fatal("a timer fired early")
	default:
	}
	clk.Advance(8 * time.Second)
	assert.Equal(t, []string{"a", "b", "c"}, order)
	select {
	case at := <-late.C():
		assert.Equal(t, start.Add(10*time.Second), at)
	default:
		t.Fatal("the due timer did not fire")
	}
	assert.Zero(t, clk.Timers())
}

func TestStopAndReset(t *testing.T) {
	clk := clocktest.New(time.Time{})
	tm := clk.NewTimer(time.Second)
	assert.True(t, tm.Stop())
	assert.False(t, tm.Stop(), "already stopped")
	clk.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	assert.False(t, tm.Reset(time.Minute), "was not pending")
	assert.True(t, tm.Reset(2*time.Minute), "was pending")
	clk.Advance(time.Minute)
	assert.Equal(t, 1, clk.Timers(), "the reset moved the due time")
	clk.Advance(time.Minute)
	<-tm.C()

	now := clk.NewTimer(0)
	<-now.C() // d <= 0 fires at once
	done := make(chan struct{})
	clk.AfterFunc(-time.Second, func() { close(done) })
	<-done
}

func TestBlockUntilWaitsForWaiters(t *testing.T) {
	clk := clocktest.New(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	woke := make(chan time.Duration, 3)
	for i := 1; i <= 3; i++ {
		go func() {
			tm := clk.NewTimer(time.Duration(i) * time.Second)
			<-tm.C()
			woke <- time.Duration(i) * time.Second
		}()
	}
	require.NoError(t, clk.BlockUntil(ctx, 3))
	clk.Advance(3 * time.Second)
	got := map[time.Duration]bool{}
	for range 3 {
		got[<-woke] = true
	}
	assert.Len(t, got, 3)

	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	assert.ErrorIs(t, clk.BlockUntil(short, 1), context.Canceled, "nobody waits: BlockUntil ends with the context")
}

func TestSetAndNegativeAdvance(t *testing.T) {
	clk := clocktest.New(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	clk.Set(time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC))
	assert.Equal(t, 2, clk.Now().Day())
	assert.Panics(t, func() { clk.Advance(-time.Second) })
	assert.Panics(t, func() { clk.Set(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) })
}

// A test moves time by hand: the timer fires when the clock passes it.
func ExampleClock() {
	clk := clocktest.New(time.Time{})
	tm := clk.NewTimer(time.Minute)
	clk.Advance(59 * time.Second)
	select {
	case <-tm.C():
		fmt.Println("fired early")
	default:
		fmt.Println("still waiting at", clk.Now().Format(time.TimeOnly))
	}
	clk.Advance(time.Second)
	fmt.Println("fired at", (<-tm.C()).Format(time.TimeOnly))
	// Output:
	// still waiting at 00:00:59
	// fired at 00:01:00
}
