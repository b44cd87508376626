package chain_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/leader"
)

// cutOff is a leader store that a replica cannot reach while down.
type cutOff struct {
	leader.Store
	down atomic.Bool
}

func (c *cutOff) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	if c.down.Load() {
		return leader.Lease{}, fmt.Errorf("leader store unreachable")
	}
	return c.Store.TryAcquire(ctx, name, holder, ttl)
}

func (c *cutOff) Release(ctx context.Context, name, holder string, token int64) error {
	if c.down.Load() {
		return fmt.Errorf("leader store unreachable")
	}
	return c.Store.Release(ctx, name, holder, token)
}

// TestCoordinatorReplicasElectOneLeader runs three coordinator replicas
// (with a worker each) on one bus and one store. Instances are begun on
// every replica; the leader is stopped cleanly, then the next one is cut off
// from the lease store (as a paused or partitioned process would be). Each
// time another replica takes over within the lease's TTL (plus its retry
// interval), resumes what was in flight and finishes every instance; every
// step's handler completes exactly once per instance (the workers' step
// claims absorb commands sent again by a new leader).
func TestCoordinatorReplicasElectOneLeader(t *testing.T) {
	const ttl = 300 * time.Millisecond
	const instances = 30
	def := orderChain()
	for i := range def.Steps {
		def.Steps[i].AttemptTimeout = 2 * time.Second
	}
	r := newRuns()
	slow := func(name string) chain.Handler {
		return counted(r, name, chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			time.Sleep(5 * time.Millisecond)
			return name + "-done", nil
		}})
	}
	handlers := map[string]chain.Handler{"payment": slow("payment"), "inventory": slow("inventory"), "shipping": slow("shipping"), "email": slow("email")}
	store := chain.NewMemoryStore()
	leases := leader.NewMemoryStore()
	bus := openBus(t)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })

	type replica struct {
		name   string
		leases *cutOff
		coord  *chain.Coordinator
		work   *chain.Worker
	}
	var reps []*replica
	for i := 0; i < 3; i++ {
		rep := &replica{name: fmt.Sprintf("r%d", i), leases: &cutOff{Store: leases}}
		rep.coord, rep.work = start(t, bus, def, store, handlers, chain.WorkerOptions{}, chain.CoordinatorOptions{
			Leader: rep.leases, LeaderOptions: leader.Options{Holder: rep.name, TTL: ttl}, RescanInterval: 50 * time.Millisecond})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = rep.coord.Close(ctx)
			_ = rep.work.Close(ctx)
		})
		reps = append(reps, rep)
	}
	holder := func() string { return leases.Current("order-coordinator").Holder }
	waitLeader := func(not string) (string, time.Duration) {
		t0 := time.Now()
		for time.Since(t0) < 5*time.Second {
			if h := holder(); h != "" && h != not {
				return h, time.Since(t0)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no replica other than %q took the lease", not)
		return "", 0
	}
	byName := func(n string) *replica {
		for _, rep := range reps {
			if rep.name == n {
				return rep
			}
		}
		t.Fatalf("no replica %q", n)
		return nil
	}
	first, _ := waitLeader("")

	ctx := context.Background()
	closed := map[string]bool{}
	begin := func(from, to int) {
		for i := from; i < to; i++ {
			rep := reps[i%len(reps)] // followers begin instances too
			for k := 1; closed[rep.name]; k++ {
				rep = reps[(i+k)%len(reps)]
			}
			_, err := rep.coord.Begin(ctx, fmt.Sprintf("o-%02d", i), order{ID: fmt.Sprintf("o-%02d", i)})
			require.NoError(t, err)
		}
	}
	begin(0, 10)
	time.Sleep(50 * time.Millisecond)

	// The leader stops cleanly: it releases the lease.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, byName(first).coord.Close(cctx))
	cancel()
	closed[first] = true
	second, stopHandOver := waitLeader(first)
	assert.Less(t, stopHandOver, ttl, "a released lease is taken at the next try")
	begin(10, 20)
	time.Sleep(50 * time.Millisecond)

	// The next leader is cut off from the lease store: it stops
	// coordinating at its local deadline, and another replica takes over
	// once the lease has expired.
	byName(second).leases.down.Store(true)
	third, cutHandOver := waitLeader(second)
	assert.NotEqual(t, first, third)
	assert.Less(t, cutHandOver, ttl+ttl/3+300*time.Millisecond, "hand-over within ttl + retry interval")
	begin(20, instances)

	waiter := byName(third).coord
	for i := 0; i < instances; i++ {
		inst := wait(t, waiter, fmt.Sprintf("o-%02d", i))
		require.Equal(t, chain.StatusCompleted, inst.Status, "instance o-%02d", i)
	}
	for _, step := range []string{"payment", "inventory", "shipping", "email"} {
		assert.Equal(t, instances, r.completed(step), "%s completed once per instance", step)
	}
	t.Logf("leaders %s -> %s (clean stop, %v) -> %s (cut off, %v); %d instances finished, each step once",
		first, second, stopHandOver.Round(time.Millisecond), third, cutHandOver.Round(time.Millisecond), instances)
}

func TestCoordinatorOptionsRefuseNegativeRescan(t *testing.T) {
	_, err := chain.NewCoordinator(orderChain(), openBus(t), chain.NewMemoryStore(), chain.CoordinatorOptions{RescanInterval: -1})
	require.Error(t, err)
}
