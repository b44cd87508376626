package sourcing_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// publication is one Publish call of one relay.
type publication struct {
	relay string
	ids   []string
	at    time.Time
}

// replicaBus records what each relay publishes; a paused relay's Publish
// blocks until it is resumed, as a process stopped by the OS or a long GC
// pause would, ignoring its context.
type replicaBus struct {
	mu   sync.Mutex
	pubs []publication
}

type replicaPublisher struct {
	name   string
	bus    *replicaBus
	paused atomic.Bool
	resume chan struct{}
}

func (p *replicaPublisher) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	if p.paused.Load() {
		<-p.resume
	}
	pub := publication{relay: p.name, at: time.Now()}
	for _, e := range events {
		pub.ids = append(pub.ids, e.ID())
	}
	p.bus.mu.Lock()
	p.bus.pubs = append(p.bus.pubs, pub)
	p.bus.mu.Unlock()
	return nil
}

func (b *replicaBus) snapshot() []publication {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]publication(nil), b.pubs...)
}

// countsByID returns how often each event id was published.
func (b *replicaBus) countsByID() map[string]int {
	n := map[string]int{}
	for _, p := range b.snapshot() {
		for _, id := range p.ids {
			n[id]++
		}
	}
	return n
}

// unreachable is a leader store that fails while down: the replica cannot
// reach it (a paused or partitioned process).
type unreachable struct {
	leader.Store
	down atomic.Bool
}

func (u *unreachable) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	if u.down.Load() {
		return leader.Lease{}, fmt.Errorf("leader store unreachable")
	}
	return u.Store.TryAcquire(ctx, name, holder, ttl)
}

func (u *unreachable) Release(ctx context.Context, name, holder string, token int64) error {
	if u.down.Load() {
		return fmt.Errorf("leader store unreachable")
	}
	return u.Store.Release(ctx, name, holder, token)
}

type replica struct {
	pub    *replicaPublisher
	leases *unreachable
	cancel context.CancelFunc
	done   chan error
}

const relayTTL = 300 * time.Millisecond

func startReplica(t *testing.T, name string, store *sourcing.MemoryStore, leases leader.Store, bus *replicaBus) *replica {
	t.Helper()
	r := &replica{
		pub:    &replicaPublisher{name: name, bus: bus, resume: make(chan struct{})},
		leases: &unreachable{Store: leases},
		done:   make(chan error, 1),
	}
	relay := &sourcing.Relay{Outbox: store, Bus: r.pub, BatchSize: 10, PollInterval: 20 * time.Millisecond,
		Leader: r.leases, LeaderOptions: leader.Options{Holder: name, TTL: relayTTL}}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- relay.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		if r.pub.paused.Swap(false) {
			close(r.pub.resume)
		}
		for range r.done { // drain, whether or not the test read the result
		}
	})
	return r
}

// appendSlowly appends n events, one every few milliseconds, to three
// streams, and returns their ids in order when done.
func appendSlowly(ctx context.Context, store *sourcing.MemoryStore, n int) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var ids []string
		for i := 0; i < n && ctx.Err() == nil; i++ {
			e := credit(i)
			e.SetID(fmt.Sprintf("ev-%03d", i))
			if _, err := store.Append(ctx, fmt.Sprintf("seller-%d", i%3), sourcing.Any, e); err == nil {
				ids = append(ids, e.ID())
			}
			time.Sleep(3 * time.Millisecond)
		}
		out <- ids
	}()
	return out
}

func waitAllPublished(t *testing.T, bus *replicaBus, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		counts := bus.countsByID()
		missing := 0
		for _, id := range ids {
			if counts[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events were never published", missing, len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitHolder(t *testing.T, leases *leader.MemoryStore, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for leases.Current("crossbus-outbox-relay").Holder != name {
		require.True(t, time.Now().Before(deadline), "%s never became leader", name)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayReplicasHandOverWhenTheLeaderStops runs three relays on one
// outbox: only the leader publishes; when it stops (its context ends, so it
// releases the lease) another takes over at its next try, and every event
// is published exactly once.
func TestRelayReplicasHandOverWhenTheLeaderStops(t *testing.T) {
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{Outbox: sourcing.ToTopic("payouts")})
	leases := leader.NewMemoryStore()
	bus := &replicaBus{}
	a := startReplica(t, "a", store, leases, bus)
	waitHolder(t, leases, "a")
	startReplica(t, "b", store, leases, bus)
	startReplica(t, "c", store, leases, bus)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	appended := appendSlowly(ctx, store, 200)
	time.Sleep(200 * time.Millisecond)
	a.cancel()
	require.NoError(t, <-a.done)
	stopped := time.Now()
	ids := <-appended
	waitAllPublished(t, bus, ids, 5*time.Second)

	var firstAfter time.Time
	for _, p := range bus.snapshot() {
		if p.at.After(stopped) {
			assert.NotEqual(t, "a", p.relay, "the stopped relay publishes nothing")
			if firstAfter.IsZero() {
				firstAfter = p.at
			}
		}
	}
	require.False(t, firstAfter.IsZero(), "another relay took over")
	assert.Less(t, firstAfter.Sub(stopped), relayTTL, "a released its lease: the next leader took over at its next try (ttl/3)")
	for id, n := range bus.countsByID() {
		assert.Equal(t, 1, n, "event %s published once: no overlap between leaders", id)
	}
	t.Logf("hand-over after a clean stop: %v", firstAfter.Sub(stopped))
}

// TestRelayPausedLeaderIsFencedAfterItsBatch pauses the leader in the
// middle of a publish (its bus call blocks, its lease store is out of
// reach) for longer than the lease: another relay takes over within the
// lease's TTL and publishes everything still unmarked, including the
// paused leader's batch. When the old leader resumes, the publish it had
// started completes — those events go out twice, the at-least-once
// duplicates the test counts — and then it publishes nothing more: its
// lease context was cancelled when it could no longer prove the lease.
func TestRelayPausedLeaderIsFencedAfterItsBatch(t *testing.T) {
	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{Outbox: sourcing.ToTopic("payouts")})
	leases := leader.NewMemoryStore()
	bus := &replicaBus{}
	a := startReplica(t, "a", store, leases, bus)
	waitHolder(t, leases, "a")
	startReplica(t, "b", store, leases, bus)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	appended := appendSlowly(ctx, store, 300)
	time.Sleep(200 * time.Millisecond)
	a.pub.paused.Store(true)
	a.leases.down.Store(true)
	paused := time.Now()

	// b takes over once a's lease has expired.
	deadline := time.Now().Add(5 * time.Second)
	var takeover time.Time
	for takeover.IsZero() {
		require.True(t, time.Now().Before(deadline), "b never took over")
		for _, p := range bus.snapshot() {
			if p.relay == "b" {
				takeover = p.at
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	assert.Less(t, takeover.Sub(paused), relayTTL+relayTTL/3+300*time.Millisecond, "hand-over within ttl + retry interval")
	time.Sleep(2 * relayTTL)

	// a resumes: its blocked publish completes, then nothing more.
	resumed := time.Now()
	a.leases.down.Store(false)
	a.pub.paused.Store(false)
	close(a.pub.resume)
	ids := <-appended
	waitAllPublished(t, bus, ids, 5*time.Second)
	time.Sleep(3 * relayTTL) // time for a stale leader to misbehave

	var stale []publication
	for _, p := range bus.snapshot() {
		if p.relay == "a" && !p.at.Before(resumed) {
			stale = append(stale, p)
		}
	}
	require.LessOrEqual(t, len(stale), 1, "after resuming, a completes at most the publish it had started")
	dups := 0
	for id, n := range bus.countsByID() {
		if n > 1 {
			dups++
			require.Len(t, stale, 1)
			assert.Contains(t, stale[0].ids, id, "only the paused batch is published twice")
			assert.Equal(t, 2, n)
		}
	}
	if len(stale) == 1 {
		assert.Equal(t, len(stale[0].ids), dups, "each event of the paused batch was also published by b")
	}
	t.Logf("hand-over after a pause: %v; the paused leader's in-flight batch (%d events) was published twice, nothing else",
		takeover.Sub(paused), dups)
}
