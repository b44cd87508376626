package redis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/sequence"
	"github.com/crossbus/crossbus/stores/redis"
)

// A consumer shared by many replicas: the idempotency records and the
// LatestWins sequences live in one Redis, so a duplicate or a stale update
// is skipped whichever replica receives it. (Compiled only: it needs a
// Redis server.)
func ExampleOpen() {
	ctx := context.Background()
	store, err := redis.Open(ctx, "redis://localhost:6379/0", redis.Options{Prefix: "pricing"})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	latest, err := sequence.LatestWins(store.Sequences())
	if err != nil {
		panic(err)
	}
	apply := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		fmt.Println("price of", crossbus.PartitionKey(e), "is now", string(e.Data()))
		return nil
	})
	// In a service: router.Handle("prices", "catalog", apply, crossbus.WithIdempotency(store.Idempotency(), crossbus.IdempotencyOptions{}), crossbus.WithMiddleware(latest))
	idem, err := crossbus.Idempotent(store.Idempotency(), crossbus.IdempotencyOptions{TTL: 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	h := idem(latest(apply))

	e := crossbus.NewEvent("price.changed", "/catalog")
	crossbus.SetPartitionKey(&e, "sku-42")
	e.SetExtension(crossbus.ExtSequence, sequence.Format(7))
	_ = crossbus.SetData(&e, 1999)
	_ = h.Handle(ctx, &e)
}

// One replica at a time runs the outbox relay: the lease lives in Redis,
// and its token fences a replica that lost it.
func ExampleStore_Leader() {
	ctx := context.Background()
	store, err := redis.Open(ctx, "redis://localhost:6379/0", redis.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	err = leader.Run(ctx, store.Leader(), "outbox-relay", leader.Options{Holder: "replica-1", TTL: 10 * time.Second},
		func(ctx context.Context, lease leader.Lease) error {
			fmt.Println("leading with token", lease.Token)
			<-ctx.Done() // relay until the lease is lost or ctx ends
			return nil
		})
	fmt.Println(err)
}
