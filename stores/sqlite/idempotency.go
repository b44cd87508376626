package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
)

// IdempotencyStore is a crossbus.IdempotencyStore in the DB's file, shared by every
// process that opens it. Begin is one atomic upsert: of concurrent Begins for
// a free key exactly one claims it. Expired records are deleted in the
// background of Begin every Options.PurgeInterval.
type IdempotencyStore struct {
	db        *DB
	lastPurge atomic.Int64
}

var _ crossbus.IdempotencyStore = (*IdempotencyStore)(nil)

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
)

// Begin implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	if err := ctx.Err(); err != nil {
		return crossbus.Claim{}, err
	}
	now := time.Now()
	s.maybePurge(ctx, now)
	token := crossbus.NewClaimToken()
	claim := s.db.stmt(qIdemClaim)
	res, err := claim.ExecContext(ctx, []byte(key), token, now.Add(lease).UnixNano(), now.UnixNano())
	if err != nil {
		return crossbus.Claim{}, fmt.Errorf("sqlite: idempotency begin: %w", wrapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return crossbus.Claim{}, err
	} else if n == 1 {
		return crossbus.Claim{Status: crossbus.ClaimNew, Token: token}, nil
	}
	status := s.db.stmt(qIdemStatus)
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

// Renew implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	now := time.Now()
	return s.settle(ctx, key, qIdemRenew, now.Add(lease).UnixNano(), []byte(key), token, now.UnixNano())
}

// Release implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Release(ctx context.Context, key, token string) error {
	return s.settle(ctx, key, qIdemRelease, []byte(key), token, time.Now().UnixNano())
}

func (s *IdempotencyStore) settle(ctx context.Context, key, query string, args ...any) error {
	st := s.db.stmt(query)
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
	st := s.db.stmt(qIdemPurge)
	res, err := st.ExecContext(ctx, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("sqlite: idempotency purge: %w", wrapErr(err))
	}
	return res.RowsAffected()
}
