package postgres_test

import (
	"context"
	"errors"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
)

// The examples need a server, so they are compiled but not run.

func ExampleOpen() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Options{Outbox: sourcing.ToTopic("orders")})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_, _ = db.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, status text)`)

	// The order row, its event and the event's outbox message commit
	// together; a Relay publishes the message afterwards.
	err = db.WriteTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders VALUES ('o-1', 'placed')`); err != nil {
			return err
		}
		e := crossbus.NewEvent("order.placed", "/shop")
		_, err := db.Events().AppendTx(ctx, tx, "order-o-1", sourcing.NoStream, &e)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A transactional handler: its balance update commits in one transaction
// with the record that marks the event handled, so an event delivered again
// changes nothing.
func ExampleTxFrom() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	bus, err := crossbus.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)
	credit := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		tx, ok := postgres.TxFrom(ctx)
		if !ok {
			return crossbus.Permanent(errors.New("credit needs a transactional route"))
		}
		_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = $1`, e.Subject())
		return err
	})
	sub, err := bus.Subscribe(ctx, "payments", "ledger", credit,
		crossbus.WithIdempotency(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true}))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close(ctx)
}

// Every replica runs the same relay; the one holding the lease publishes,
// and its marks are fenced by the lease in the same database.
func ExampleDB_Leases() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Options{Outbox: sourcing.ToTopic("orders")})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	bus, err := crossbus.Open(ctx, os.Getenv("BUS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)
	relay := &sourcing.Relay{Outbox: db.Events(), Bus: bus, Leader: db.Leases()}
	go func() { _ = relay.Run(ctx) }()

	// A chain coordinator on every replica, one of them leading.
	def := &chain.Definition{Name: "order", Steps: []chain.Step{{Name: "payment"}, {Name: "shipping"}}}
	coord, err := chain.NewCoordinator(def, bus, db.Chains(), chain.CoordinatorOptions{
		Leader: db.Leases(), LeaderOptions: leader.Options{TTL: 10 * time.Second}})
	if err != nil {
		log.Fatal(err)
	}
	_ = coord.Start(ctx)
}
