package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// inboxKey is the context key of the transaction CompleteInTx runs a
// handler in.
type inboxKey struct{}

type inboxTx struct {
	db *DB
	tx pgx.Tx
}

// TxFrom returns the transaction that ctx carries: inside a handler of a
// route with crossbus.WithIdempotency(db.Idempotency(),
// crossbus.IdempotencyOptions{Transactional: true}), the transaction that
// marks the event handled. What the handler writes through it commits
// together with that mark, or not at all. ok is false outside such a
// handler.
//
// Write through the transaction, or pass the handler's context to the DB's
// methods (WriteTx, EventStore.Append, ...), which then join it. Writes
// through DB.Pool run in transactions of their own and commit whatever the
// handler's transaction does.
//
//	func credit(ctx context.Context, e *crossbus.Event) error {
//		tx, ok := postgres.TxFrom(ctx)
//		if !ok {
//			return crossbus.Permanent(errors.New("credit needs a transactional route"))
//		}
//		_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = $1`, e.Subject())
//		return err
//	}
func TxFrom(ctx context.Context) (tx pgx.Tx, ok bool) {
	it, ok := ctx.Value(inboxKey{}).(*inboxTx)
	if !ok {
		return nil, false
	}
	return it.tx, true
}

// joined returns the inbox transaction of db that ctx carries, or nil.
func (db *DB) joined(ctx context.Context) pgx.Tx {
	if it, ok := ctx.Value(inboxKey{}).(*inboxTx); ok && it.db == db {
		return it.tx
	}
	return nil
}
