package sqlite_test

import (
	"context"
	"database/sql"
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
