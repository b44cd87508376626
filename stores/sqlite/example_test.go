package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{Outbox: sourcing.ToTopic("orders")})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	_, _ = db.SQL().ExecContext(ctx, `CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT)`)

	// The order row, its event and the event's outbox message commit
	// together; a Relay publishes the message afterwards.
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders VALUES ('o-1', 'placed')`); err != nil {
			return err
		}
		e := crossbus.NewEvent("order.placed", "/shop")
		_, err := db.Events().AppendTx(ctx, tx, "order-o-1", sourcing.NoStream, &e)
		return err
	})
	fmt.Println(err)
	pending, _ := db.Events().PendingOutbox(ctx, 10)
	fmt.Println(len(pending), pending[0].Topic, pending[0].Stream)
	// Output:
	// <nil>
	// 1 orders order-o-1
}

// A transactional handler: its balance update commits in one transaction
// with the record that marks the event handled, so an event delivered again
// (after a crash between the commit and the acknowledgement, say) changes
// nothing. In a service the handler is a route:
//
//	router.Handle("payments", "ledger", credit,
//		crossbus.WithIdempotency(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true}))
func ExampleTxFrom() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	_, _ = db.SQL().ExecContext(ctx, `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)`)
	_, _ = db.SQL().ExecContext(ctx, `INSERT INTO accounts VALUES ('acct-1', 0)`)

	credit := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, p struct{ Amount int }) error {
		tx, ok := sqlite.TxFrom(ctx)
		if !ok {
			return crossbus.Permanent(errors.New("credit needs a transactional route"))
		}
		_, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance + ? WHERE id = ?`, p.Amount, e.Subject())
		return err
	})
	idem, err := crossbus.Idempotent(db.Idempotency(), crossbus.IdempotencyOptions{Transactional: true})
	if err != nil {
		panic(err)
	}
	h := idem(credit)

	e := crossbus.NewEvent("payment.received", "/bank")
	e.SetID("pay-1")
	e.SetSubject("acct-1")
	_ = crossbus.SetData(&e, map[string]int{"amount": 25})
	fmt.Println(h.Handle(ctx, &e)) // applied
	fmt.Println(h.Handle(ctx, &e)) // the same event again: acknowledged, not applied
	var balance int
	_ = db.SQL().QueryRowContext(ctx, `SELECT balance FROM accounts WHERE id = 'acct-1'`).Scan(&balance)
	fmt.Println("balance:", balance)
	// Output:
	// <nil>
	// <nil>
	// balance: 25
}
