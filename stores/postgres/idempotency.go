package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
)

// IdempotencyStore is a crossbus.IdempotencyStore in the DB, shared by every
// process that opens it. Begin is one atomic upsert: of concurrent Begins
// for a free key exactly one claims it. Leases and TTLs are measured on the
// database server's clock. Expired records are deleted in the background of
// Begin every Options.PurgeInterval.
//
// It is also a crossbus.InboxStore: with
// crossbus.IdempotencyOptions.Transactional, CompleteInTx runs the handler
// in a transaction of the DB that also marks the event handled (see the
// package documentation).
type IdempotencyStore struct {
	db        *DB
	lastPurge atomic.Int64
	inTx      claimtoken.InTx // claims whose handler CompleteInTx runs
}

var _ crossbus.InboxStore = (*IdempotencyStore)(nil)

// micros turns a duration into the microseconds the queries multiply by
// interval '1 microsecond' (PostgreSQL's time resolution).
func micros(d time.Duration) int64 { return d.Microseconds() }

const (
	// Claim the key, or report what holds it: the upsert claims a free or
	// expired key; otherwise the row as it was before the statement tells
	// completed from in progress. A row inserted by a concurrent claim
	// after the statement's snapshot shows as in progress (no row).
	qIdemBegin = `WITH claim AS (
		INSERT INTO §idempotency AS i (key, token, completed, expires)
		VALUES ($1, $2, false, statement_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, completed = false, expires = excluded.expires
		WHERE i.expires <= statement_timestamp()
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM claim),
		COALESCE((SELECT completed FROM §idempotency WHERE key = $1 AND expires > statement_timestamp()), false)`
	qIdemComplete = `UPDATE §idempotency SET completed = true, token = '', expires = statement_timestamp() + $3 * interval '1 microsecond'
		WHERE key = $1 AND token = $2 AND NOT completed AND expires > statement_timestamp()`
	qIdemRenew = `UPDATE §idempotency SET expires = statement_timestamp() + $3 * interval '1 microsecond'
		WHERE key = $1 AND token = $2 AND NOT completed AND expires > statement_timestamp()`
	qIdemRelease = `DELETE FROM §idempotency WHERE key = $1 AND token = $2 AND NOT completed AND expires > statement_timestamp()`
	qIdemPurge   = `DELETE FROM §idempotency WHERE key IN (SELECT key FROM §idempotency WHERE expires <= $1 LIMIT 10000)`
	// CompleteInTx locks the claim's row for the transaction: a Begin of
	// the key waits for the transaction instead of taking the key, even if
	// the lease runs out while the handler runs.
	qIdemHeld = `SELECT 1 FROM §idempotency WHERE key = $1 AND token = $2 AND NOT completed AND expires > statement_timestamp() FOR UPDATE`
	// No lease check: the row has been locked since qIdemHeld.
	qIdemCompleteTx = `UPDATE §idempotency SET completed = true, token = '', expires = statement_timestamp() + $3 * interval '1 microsecond'
		WHERE key = $1 AND token = $2 AND NOT completed`
)

// Begin implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	if err := ctx.Err(); err != nil {
		return crossbus.Claim{}, err
	}
	s.maybePurge(ctx)
	token := claimtoken.New()
	var claimed, completed bool
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(qIdemBegin), []byte(key), token, micros(lease)).Scan(&claimed, &completed)
	if err != nil {
		return crossbus.Claim{}, s.db.wrap("idempotency begin", err)
	}
	switch {
	case claimed:
		return crossbus.Claim{Status: crossbus.ClaimNew, Token: token}, nil
	case completed:
		return crossbus.Claim{Status: crossbus.ClaimCompleted}, nil
	}
	return crossbus.Claim{Status: crossbus.ClaimInProgress}, nil
}

// Complete implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Complete(ctx context.Context, key, token string, ttl time.Duration) error {
	return s.settle(ctx, "complete", key, qIdemComplete, []byte(key), token, micros(ttl))
}

// Renew implements crossbus.IdempotencyStore. While CompleteInTx runs the
// handler of the claim it returns nil at once, without writing: the
// handler's transaction holds the claim's row locked, so no one can take
// the key until it ends, and a renewal would only wait for the lock.
func (s *IdempotencyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if s.inTx.Running(key, token) {
		return nil
	}
	return s.settle(ctx, "renew", key, qIdemRenew, []byte(key), token, micros(lease))
}

// Release implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Release(ctx context.Context, key, token string) error {
	return s.settle(ctx, "release", key, qIdemRelease, []byte(key), token)
}

// CompleteInTx implements crossbus.InboxStore. It begins a transaction (or,
// when ctx already carries one of this DB, a savepoint of it), checks that
// token holds key (not completed, lease not run out) and locks the claim's
// row, runs fn with a context that carries the transaction (see TxFrom),
// marks key completed for ttl and commits. A lost claim returns an error
// wrapping crossbus.ErrLeaseLost without running fn. When fn fails or
// panics the transaction rolls back, key stays claimed by token (for the
// caller to Release), and fn's error is returned as it is.
//
// Unlike SQLite, PostgreSQL runs transactional handlers in parallel, one
// connection each: only Begins of the same key wait for the handler's
// transaction (its row lock). A handler that outlives its lease still
// commits: no one could claim the key while the row was locked.
func (s *IdempotencyStore) CompleteInTx(ctx context.Context, key, token string, ttl time.Duration, fn func(ctx context.Context) error) error {
	nested := s.db.joined(ctx) != nil
	err := s.db.writeTx(ctx, "idempotency transaction", func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, s.db.q(qIdemHeld), []byte(key), token).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("key %q: %w", key, crossbus.ErrLeaseLost)
		}
		if err != nil {
			return s.db.wrap("idempotency: lock the claim", err)
		}
		s.inTx.Enter(key, token)
		defer s.inTx.Leave(key, token)
		if err := fn(context.WithValue(ctx, inboxKey{}, &inboxTx{db: s.db, tx: tx})); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, s.db.q(qIdemCompleteTx), []byte(key), token, micros(ttl))
		if err != nil {
			return s.db.wrap("idempotency complete", err)
		}
		if tag.RowsAffected() == 0 {
			// fn itself settled the claim through the transaction.
			return fmt.Errorf("key %q: %w", key, crossbus.ErrLeaseLost)
		}
		return nil
	})
	if err == nil && !nested {
		s.db.notify() // fn may have appended events or enqueued messages
	}
	return err
}

func (s *IdempotencyStore) settle(ctx context.Context, op, key, query string, args ...any) error {
	tag, err := s.db.conn(ctx).Exec(ctx, s.db.q(query), args...)
	if err != nil {
		return s.db.wrap("idempotency "+op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %q: %w", key, crossbus.ErrLeaseLost)
	}
	return nil
}

// maybePurge deletes expired records at most once per PurgeInterval, in
// the background.
func (s *IdempotencyStore) maybePurge(ctx context.Context) {
	now := time.Now().UnixNano()
	last := s.lastPurge.Load()
	if now-last < int64(s.db.opts.PurgeInterval) || !s.lastPurge.CompareAndSwap(last, now) {
		return
	}
	go func() {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := s.Purge(pctx, time.Now()); err != nil && !s.db.closed.Load() {
			s.db.log.Warn("postgres: idempotency purge failed", "error", err)
		}
	}()
}

// Purge deletes records that expired before t (up to 10,000 at a time) and
// returns how many it deleted.
func (s *IdempotencyStore) Purge(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.db.pool.Exec(ctx, s.db.q(qIdemPurge), t)
	if err != nil {
		return 0, s.db.wrap("idempotency purge", err)
	}
	return tag.RowsAffected(), nil
}
