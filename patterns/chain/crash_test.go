package chain_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// stores runs a test with each chain.Store: the memory store, and a sqlite
// file reopened for every "process" (so state really survives only on disk).
func stores(t *testing.T, fn func(t *testing.T, open func(t *testing.T) chain.Store)) {
	t.Run("memory", func(t *testing.T) {
		s := chain.NewMemoryStore()
		fn(t, func(*testing.T) chain.Store { return s })
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "chains.db")
		fn(t, func(t *testing.T) chain.Store {
			db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return db.Chains()
		})
	})
}

// TestCrashMidChainResumesAtTheFirstUnfinishedStep stops a process while
// its second step runs, then starts a new process (new bus, new worker, new
// coordinator) on the same store: the chain finishes, and every step
// completed exactly once across both processes.
func TestCrashMidChainResumesAtTheFirstUnfinishedStep(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) chain.Store) {
		r := newRuns()
		def := orderChain()
		entered := make(chan struct{}, 1)
		first := map[string]chain.Handler{
			"payment": counted(r, "payment", chain.Handler{Do: ok("ch_1")}),
			"inventory": counted(r, "inventory", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
				entered <- struct{}{}
				<-ctx.Done() // the process goes down while the step runs
				return nil, ctx.Err()
			}}),
			"shipping": counted(r, "shipping", chain.Handler{Do: ok("label")}),
			"email":    counted(r, "email", chain.Handler{Do: ok(nil)}),
		}
		bus1 := openBus(t)
		c1, w1 := start(t, bus1, def, open(t), first, chain.WorkerOptions{}, chain.CoordinatorOptions{})
		_, err := c1.Begin(context.Background(), "o-1", order{ID: "o-1"})
		require.NoError(t, err)
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("inventory never started")
		}
		// The crash: everything of process 1 stops, its in-memory bus with it.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_ = w1.Close(ctx)
		_ = c1.Close(ctx)
		_ = bus1.Close(ctx)
		cancel()

		mid, err := open(t).Load(context.Background(), "o-1")
		require.NoError(t, err)
		assert.Equal(t, chain.StatusRunning, mid.Status)
		assert.Equal(t, "inventory", mid.Step, "the state saved before the crash")
		assert.Equal(t, []string{"payment"}, mid.Completed)

		second := map[string]chain.Handler{
			"payment":   counted(r, "payment", chain.Handler{Do: ok("ch_again")}),
			"inventory": counted(r, "inventory", chain.Handler{Do: ok("reserved")}),
			"shipping":  counted(r, "shipping", chain.Handler{Do: ok("label")}),
			"email":     counted(r, "email", chain.Handler{Do: ok(nil)}),
		}
		bus2 := openBus(t)
		defer bus2.Close(context.Background())
		c2, w2 := start(t, bus2, def, open(t), second, chain.WorkerOptions{}, chain.CoordinatorOptions{})
		defer w2.Close(context.Background())
		defer c2.Close(context.Background())
		inst := wait(t, c2, "o-1")
		assert.Equal(t, chain.StatusCompleted, inst.Status)
		for _, s := range []string{"payment", "inventory", "shipping", "email"} {
			assert.Equal(t, 1, r.completed(s), "step %s completed exactly once", s)
		}
		assert.Equal(t, 1, r.count("payment"), "the completed step was not run again")
		assert.Equal(t, 2, r.count("inventory"), "the interrupted step ran again")
		var pay string
		require.NoError(t, inst.Output("payment", &pay))
		assert.Equal(t, "ch_1", pay, "the output recorded before the crash is kept")
	})
}

// TestCrashedWorkersClaimExpires: a worker hangs while holding a step's
// claim (its process froze). A new worker gets the step once the claim's
// lease ends; when the frozen one wakes up, its outcome is discarded.
func TestCrashedWorkersClaimExpires(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) chain.Store) {
		r := newRuns()
		def := orderChain()
		entered := make(chan struct{}, 1)
		thaw := make(chan struct{})
		frozen := map[string]chain.Handler{
			"payment": counted(r, "payment", chain.Handler{Do: ok("ch_1")}),
			"inventory": counted(r, "inventory", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
				entered <- struct{}{}
				<-thaw
				return "from the frozen worker", nil
			}}),
		}
		lease := chain.WorkerOptions{Lease: 300 * time.Millisecond}
		bus1 := openBus(t)
		c1, w1 := start(t, bus1, def, open(t), frozen, lease, chain.CoordinatorOptions{})
		_, err := c1.Begin(context.Background(), "o-2", nil)
		require.NoError(t, err)
		<-entered
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_ = c1.Close(ctx) // the coordinator is gone; the frozen worker is not
		cancel()

		fresh := map[string]chain.Handler{
			"payment":   counted(r, "payment", chain.Handler{Do: ok("ch_again")}),
			"inventory": counted(r, "inventory", chain.Handler{Do: ok("from the new worker")}),
			"shipping":  counted(r, "shipping", chain.Handler{Do: ok(1)}),
			"email":     counted(r, "email", chain.Handler{Do: ok(1)}),
		}
		bus2 := openBus(t)
		defer bus2.Close(context.Background())
		c2, w2 := start(t, bus2, def, open(t), fresh, chain.WorkerOptions{Lease: 300 * time.Millisecond,
			RouteOptions: []crossbus.RouteOption{crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 50, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Multiplier: 1})}},
			chain.CoordinatorOptions{})
		defer w2.Close(context.Background())
		defer c2.Close(context.Background())
		inst := wait(t, c2, "o-2")
		assert.Equal(t, chain.StatusCompleted, inst.Status)
		var inv string
		require.NoError(t, inst.Output("inventory", &inv))
		assert.Equal(t, "from the new worker", inv)

		close(thaw) // the frozen worker finishes late
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, w1.Close(ctx))
		_ = bus1.Close(ctx)
		after, err := c2.Get(context.Background(), "o-2")
		require.NoError(t, err)
		assert.Equal(t, inst.Revision, after.Revision, "the late outcome changed nothing")
		assert.Equal(t, 1, r.count("payment"))
		assert.Equal(t, 1, r.count("shipping"))
	})
}
