package leader_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus/patterns/leader"
)

// Two replicas campaign for one lease: the first leads until it stops, and
// the second takes over with a higher token.
func ExampleRun() {
	store := leader.NewMemoryStore() // stores/postgres: db.Leases()
	elected := make(chan leader.Lease, 2)
	work := func(ctx context.Context, l leader.Lease) error {
		elected <- l
		<-ctx.Done() // lead until the lease is lost or Run stops
		return nil
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() {
		doneA <- leader.Run(ctxA, store, "relay", leader.Options{Holder: "a", TTL: 300 * time.Millisecond}, work)
	}()
	first := <-elected

	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	go func() {
		_ = leader.Run(ctxB, store, "relay", leader.Options{Holder: "b", TTL: 300 * time.Millisecond}, work)
	}()
	time.Sleep(50 * time.Millisecond)
	stopA() // a stops and releases the lease
	<-doneA
	second := <-elected
	fmt.Println(first.Holder, second.Holder, second.Token > first.Token)
	// Output: a b true
}

// A store that checks the token refuses a stale holder: here the check by
// hand.
func ExampleLease_HeldBy() {
	store := leader.NewMemoryStore()
	ctx := context.Background()
	a, _ := store.TryAcquire(ctx, "coordinator", "a", 100*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // a pauses past its lease
	b, _ := store.TryAcquire(ctx, "coordinator", "b", time.Minute)
	now, _ := store.TryAcquire(ctx, "coordinator", "a", time.Minute) // a's renewal
	fmt.Println(b.HeldBy("b", b.Token), now.HeldBy("a", a.Token), now.Holder)
	// Output: true false b
}
