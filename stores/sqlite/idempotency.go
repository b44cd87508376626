package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
)

// IdempotencyStore is a crossbus.IdempotencyStore in the DB's file, shared by every
// process that opens it. Begin is one atomic upsert: of concurrent Begins for
// a free key exactly one claims it. Expired records are deleted in the
// background of Begin every Options.PurgeInterval.
//
// It is also a crossbus.InboxStore: with
// crossbus.IdempotencyOptions.Transactional, CompleteInTx runs the handler
// in a write transaction of the DB that also marks the event handled (see
// the package documentation).
type IdempotencyStore struct {
	db        *DB
	lastPurge atomic.Int64
	inTx      claimtoken.InTx // claims whose handler CompleteInTx runs
}

var _ crossbus.InboxStore = (*IdempotencyStore)(nil)

const (
	qIdemClaim = `INSERT INTO idempotency (key, token, completed, expires) VALUES (?1, ?2, 0, ?3)
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, completed = 0, expires = excluded.expires
		WHERE idempotency.expires <= ?4`
	qIdemStatus   = `SELECT completed FROM idempotency WHERE key = ? AND expires > ?`
	qIdemComplete = `UPDATE idempotency SET completed = 1, token = '', expires = ?1
		WHERE key = ?2 AND token = ?3 AND completed = 0 AND expires > ?4`
	qIdemRenew = `UPDATE idempotency SET expires = ?1
		WHERE key = ?2 AND token = ?3 AND completed = 0 AND expires > ?4`
	qIdemRelease = `DELETE FROM idempotency WHERE key = ?1 AND token = ?2 AND completed = 0 AND expires > ?3`
	qIdemPurge   = `DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE expires <= ? LIMIT 10000)`
	qIdemHeld    = `SELECT 1 FROM idempotency WHERE key = ?1 AND token = ?2 AND completed = 0 AND expires > ?3`
	// No lease check: CompleteInTx checked the lease when its transaction
	// began, and the transaction has held the write lock since, so no one
	// can have claimed the key in between.
	qIdemCompleteTx = `UPDATE idempotency SET completed = 1, token = '', expires = ?1
		WHERE key = ?2 AND token = ?3 AND completed = 0`
)

// Begin implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	if err := ctx.Err(); err != nil {
		return crossbus.Claim{}, err
	}
	now := time.Now()
	s.maybePurge(ctx, now)
	token := claimtoken.New()
	claim := s.db.writeStmt(ctx, qIdemClaim)
	res, err := claim.ExecContext(ctx, []byte(key), token, now.Add(lease).UnixNano(), now.UnixNano())
	if err != nil {
		return crossbus.Claim{}, fmt.Errorf("sqlite: idempotency begin: %w", wrapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return crossbus.Claim{}, err
	} else if n == 1 {
		return crossbus.Claim{Status: crossbus.ClaimNew, Token: token}, nil
	}
	status := s.db.writeStmt(ctx, qIdemStatus)
	var completed bool
	if err := status.QueryRowContext(ctx, []byte(key), now.UnixNano()).Scan(&completed); err != nil {
		// The record went away between the two statements (released or
		// expired): report it held, so the caller retries shortly.
		if errors.Is(err, errNoRows) {
			return crossbus.Claim{Status: crossbus.ClaimInProgress}, nil
		}
		return crossbus.Claim{}, fmt.Errorf("sqlite: idempotency begin: %w", wrapErr(err))
	}
	if completed {
		return crossbus.Claim{Status: crossbus.ClaimCompleted}, nil
	}
	return crossbus.Claim{Status: crossbus.ClaimInProgress}, nil
}

// Complete implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Complete(ctx context.Context, key, token string, ttl time.Duration) error {
	now := time.Now()
	return s.settle(ctx, key, qIdemComplete, now.Add(ttl).UnixNano(), []byte(key), token, now.UnixNano())
}

// Renew implements crossbus.IdempotencyStore. While CompleteInTx runs the
// handler of the claim it returns nil at once, without writing: the
// handler's transaction holds the database's write lock, so no one can take
// the key until it ends, and a renewal would only wait for that lock.
func (s *IdempotencyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if s.inTx.Running(key, token) {
		return nil
	}
	now := time.Now()
	return s.settle(ctx, key, qIdemRenew, now.Add(lease).UnixNano(), []byte(key), token, now.UnixNano())
}

// Release implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Release(ctx context.Context, key, token string) error {
	return s.settle(ctx, key, qIdemRelease, []byte(key), token, time.Now().UnixNano())
}

// CompleteInTx implements crossbus.InboxStore. It begins a write
// transaction (or, when ctx already carries one of this DB, a savepoint of
// it), checks that token holds key (not completed, lease not run out), runs
// fn with a context that carries the transaction (see TxFrom), marks key
// completed for ttl and commits. A lost claim returns an error wrapping
// crossbus.ErrLeaseLost without running fn. When fn fails or panics the
// transaction rolls back, key stays claimed by token (for the caller to
// Release), and fn's error is returned as it is.
//
// The transaction holds the database's single write lock while fn runs, so
// transactional handlers run one at a time, and every other writer, in this
// process or another, waits for fn to return. A handler that outlives its
// lease still commits: no one else could claim the key while the lock was
// held.
func (s *IdempotencyStore) CompleteInTx(ctx context.Context, key, token string, ttl time.Duration, fn func(ctx context.Context) error) error {
	nested := s.db.joined(ctx) != nil
	err := s.db.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := s.db.txStmt(ctx, tx, qIdemHeld).QueryRowContext(ctx, []byte(key), token, time.Now().UnixNano()).Scan(&one)
		if errors.Is(err, errNoRows) {
			return fmt.Errorf("key %q: %w", key, crossbus.ErrLeaseLost)
		}
		if err != nil {
			return fmt.Errorf("sqlite: idempotency: %w", wrapErr(err))
		}
		s.inTx.Enter(key, token)
		defer s.inTx.Leave(key, token)
		if err := fn(context.WithValue(ctx, inboxKey{}, &inboxTx{db: s.db, tx: tx})); err != nil {
			return err
		}
		res, err := s.db.txStmt(ctx, tx, qIdemCompleteTx).ExecContext(ctx, time.Now().Add(ttl).UnixNano(), []byte(key), token)
		if err != nil {
			return fmt.Errorf("sqlite: idempotency complete: %w", wrapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
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

func (s *IdempotencyStore) settle(ctx context.Context, key, query string, args ...any) error {
	st := s.db.writeStmt(ctx, query)
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: idempotency: %w", wrapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("key %q: %w", key, crossbus.ErrLeaseLost)
	}
	return nil
}

// maybePurge deletes expired records at most once per PurgeInterval.
func (s *IdempotencyStore) maybePurge(ctx context.Context, now time.Time) {
	last := s.lastPurge.Load()
	if now.UnixNano()-last < int64(s.db.opts.PurgeInterval) || !s.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	_, _ = s.Purge(ctx, now)
}

// Purge deletes records that expired before now (up to 10,000 at a time)
// and returns how many it deleted.
func (s *IdempotencyStore) Purge(ctx context.Context, now time.Time) (int64, error) {
	st := s.db.writeStmt(ctx, qIdemPurge)
	res, err := st.ExecContext(ctx, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("sqlite: idempotency purge: %w", wrapErr(err))
	}
	return res.RowsAffected()
}
