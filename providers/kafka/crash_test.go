package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// TestCrashBeforeCommitLosesNothing runs concurrent handlers that finish out
// of order, with one handler per partition stuck until the process dies. The
// consumer crashes (no final commit) while commits run every 20ms. The
// committed offset of each partition must not pass its stuck record, and a
// restarted consumer must receive every event that was not handled.
func TestCrashBeforeCommitLosesNothing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	opts := Options{Brokers: c.ListenAddrs(), CommitInterval: 20 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond)}}
	p1, err := New(ctx, opts)
	require.NoError(t, err)
	require.NoError(t, p1.CreateSubscription(ctx, "events", "billing"))

	const total = 300
	var all []*crossbus.Event
	for i := 0; i < total; i++ {
		e := crossbus.NewEvent("com.example.order.placed", "/crash-test")
		crossbus.SetPartitionKey(&e, fmt.Sprintf("customer-%d", i%30)) // spread over the partitions
		require.NoError(t, crossbus.SetData(&e, map[string]int{"n": i}))
		all = append(all, &e)
	}
	require.NoError(t, p1.Publish(ctx, "events", all))

	recv, err := p1.Subscribe(ctx, driver.SubscriptionSpec{Topic: "events", Name: "billing"})
	require.NoError(t, err)
	r := recv.(*receiver)

	var mu sync.Mutex
	handled := map[string]bool{}
	stuck := map[int32]int64{} // partition -> offset of its stuck record
	stuckIDs := map[string]bool{}
	perPartition := map[int32]int{}
	release := make(chan struct{}) // never closed before the crash: stuck handlers die with the process
	var wg sync.WaitGroup
	rctx, stop := context.WithCancel(ctx)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]driver.Delivery, 4)
			for {
				n, err := r.Receive(rctx, buf)
				if err != nil {
					return
				}
				for _, d := range buf[:n] {
					kd := d.(*delivery)
					part := kd.rec.Partition
					mu.Lock()
					perPartition[part]++
					// The tenth record of each partition gets stuck.
					isStuck := perPartition[part] == 10
					if isStuck {
						stuck[part] = kd.rec.Offset
						stuckIDs[d.Event().ID()] = true
					}
					mu.Unlock()
					wg.Add(1)
					go func() { // handlers finish out of order
						defer wg.Done()
						if isStuck {
							select {
							case <-release:
							case <-rctx.Done():
							}
							return
						}
						time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
						mu.Lock()
						handled[d.Event().ID()] = true
						mu.Unlock()
						_ = d.Ack(ctx)
					}()
				}
			}
		}()
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) >= total*2/3
	}, 30*time.Second, 5*time.Millisecond, "two thirds of the events handled before the crash")
	time.Sleep(100 * time.Millisecond) // let a few commits happen
	r.crash()
	stop()
	wg.Wait()
	_ = p1.Close(ctx)

	mu.Lock()
	require.NotEmpty(t, stuck, "some handlers were stuck at the crash")
	handledBefore := len(handled)
	mu.Unlock()

	adm := kadm.NewClient(newClient(t, c))
	committed, err := adm.FetchOffsets(ctx, p1.GroupID("events", "billing"))
	require.NoError(t, err)
	movedPast := 0
	for part, off := range stuck {
		o, ok := committed.Lookup("events", part)
		require.True(t, ok)
		assert.LessOrEqual(t, o.At, off, "partition %d committed past its stuck record at offset %d", part, off)
		if o.At > 0 {
			movedPast++
		}
	}
	assert.Positive(t, movedPast, "commits happened while handlers finished out of order")

	// Restart: a new consumer of the group receives everything not handled.
	p2, err := New(ctx, opts)
	require.NoError(t, err)
	defer p2.Close(ctx)
	recv2, err := p2.Subscribe(ctx, driver.SubscriptionSpec{Topic: "events", Name: "billing"})
	require.NoError(t, err)
	defer recv2.Close(ctx)
	again := map[string]bool{}
	buf := make([]driver.Delivery, 32)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		mu.Lock()
		missing := 0
		for _, e := range all {
			if !handled[e.ID()] && !again[e.ID()] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		n, err := recv2.Receive(cctx, buf)
		require.NoError(t, err, "still missing %d events after the restart", missing)
		for _, d := range buf[:n] {
			again[d.Event().ID()] = true
			require.NoError(t, d.Ack(ctx))
		}
	}
	for id := range stuckIDs {
		assert.True(t, again[id], "the stuck event %s is delivered after the restart", id)
	}
	t.Logf("handled before the crash: %d; received after the restart: %d (of which handled before: %d)",
		handledBefore, len(again), len(again)-(total-handledBefore))
}

func newClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}
