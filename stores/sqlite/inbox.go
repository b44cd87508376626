package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// inboxKey is the context key of the transaction CompleteInTx runs a
// handler in.
type inboxKey struct{}

type inboxTx struct {
	db *DB
	tx *sql.Tx
}

// TxFrom returns the write transaction that ctx carries: inside a handler of
// a route with crossbus.WithIdempotency(db.Idempotency(),
// crossbus.IdempotencyOptions{Transactional: true}), the transaction that
// marks the event handled. What the handler writes through it commits
// together with that mark, or not at all. ok is false outside such a
// handler.
//
// Write through the transaction, or pass the handler's context to the DB's
// methods (WriteTx, EventStore.Append, ...), which then join it. Do not use
// DB.SQL for writes there: the transaction holds that connection until the
// handler returns. Reads through DB.SQL wait for it too; reads through the
// transaction see the handler's own writes.
//
//	func credit(ctx context.Context, e *crossbus.Event) error {
//		tx, ok := sqlite.TxFrom(ctx)
//		if !ok {
//			return crossbus.Permanent(errors.New("credit needs a transactional route"))
//		}
//		_, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = ?`, e.Subject())
//		return err
//	}
func TxFrom(ctx context.Context) (tx *sql.Tx, ok bool) {
	it, ok := ctx.Value(inboxKey{}).(*inboxTx)
	if !ok {
		return nil, false
	}
	return it.tx, true
}

// joined returns the inbox transaction of db that ctx carries, or nil.
func (db *DB) joined(ctx context.Context) *sql.Tx {
	if it, ok := ctx.Value(inboxKey{}).(*inboxTx); ok && it.db == db {
		return it.tx
	}
	return nil
}

// savepoint runs fn in a savepoint of tx: when fn fails or panics its
// writes are undone and tx goes on; otherwise they commit with tx.
func savepoint(ctx context.Context, tx *sql.Tx, fn func(tx *sql.Tx) error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT crossbus_write`); err != nil {
		return fmt.Errorf("sqlite: begin nested write: %w", wrapErr(err))
	}
	undo := func() {
		uctx := context.WithoutCancel(ctx)
		_, _ = tx.ExecContext(uctx, `ROLLBACK TO crossbus_write`)
		_, _ = tx.ExecContext(uctx, `RELEASE crossbus_write`)
	}
	defer func() {
		if p := recover(); p != nil {
			undo()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		undo()
		return err
	}
	if _, err := tx.ExecContext(ctx, `RELEASE crossbus_write`); err != nil {
		return fmt.Errorf("sqlite: end nested write: %w", wrapErr(err))
	}
	return nil
}
