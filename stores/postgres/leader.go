package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/sequence"
)

// LeaderStore is a leader.Store in the DB: one row per lease name, whose
// expiry is measured on the database server's clock (replicas need no
// synchronised clocks). TryAcquire is one upsert, atomic under concurrent
// callers. The row is kept after a release, so tokens only rise.
//
// The DB's fenced writes (EventStore.MarkSent, ChainStore.Create and
// Save, given a context with leader.WithLease) check the lease's row in
// the same transaction, and hold it in share mode until they commit: a new
// holder's acquisition waits for them, so a fenced write either commits
// within its term or is refused.
type LeaderStore struct {
	db *DB
}

var _ leader.Store = (*LeaderStore)(nil)

const (
	// Take the lease when it is free or expired (a new term: token + 1),
	// renew it for its holder (same token), else leave it; then return the
	// row as it now is. A row another caller inserted after this
	// statement's snapshot is not returned: the caller sees no holder and
	// tries again.
	qLeaseAcquire = `WITH up AS (
		INSERT INTO §leases AS l (name, holder, token, expires)
		VALUES ($1, $2, 1, statement_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET
			token = CASE WHEN l.holder = excluded.holder AND l.expires > statement_timestamp() THEN l.token ELSE l.token + 1 END,
			holder = excluded.holder,
			expires = excluded.expires
		WHERE (l.holder = excluded.holder AND l.expires > statement_timestamp()) OR l.holder = '' OR l.expires <= statement_timestamp()
		RETURNING holder, token, expires)
	SELECT holder, token, expires FROM up
	UNION ALL
	SELECT CASE WHEN expires > statement_timestamp() THEN holder ELSE '' END, token, expires
		FROM §leases WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM up)`
	qLeaseRelease = `UPDATE §leases SET holder = '', expires = '-infinity'
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires > statement_timestamp()`
)

// TryAcquire implements leader.Store.
func (s *LeaderStore) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	if err := leader.ValidateLease(name, holder, ttl); err != nil {
		return leader.Lease{}, err
	}
	l := leader.Lease{Name: name}
	rows, err := s.db.pool.Query(ctx, s.db.q(qLeaseAcquire), name, holder, micros(ttl))
	if err != nil {
		return leader.Lease{}, s.db.wrap(fmt.Sprintf("acquire lease %q", name), err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&l.Holder, &l.Token, &l.Expires); err != nil {
			return leader.Lease{}, s.db.wrap(fmt.Sprintf("acquire lease %q", name), err)
		}
	}
	if err := rows.Err(); err != nil {
		return leader.Lease{}, s.db.wrap(fmt.Sprintf("acquire lease %q", name), err)
	}
	if l.Holder == "" {
		l.Expires = time.Time{}
	}
	return l, nil
}

// Release implements leader.Store.
func (s *LeaderStore) Release(ctx context.Context, name, holder string, token int64) error {
	tag, err := s.db.pool.Exec(ctx, s.db.q(qLeaseRelease), name, holder, token)
	if err != nil {
		return s.db.wrap(fmt.Sprintf("release lease %q", name), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: release lease %q by %q (token %d): %w", name, holder, token, leader.ErrNotHeld)
	}
	return nil
}

// SequenceStore is a sequence.Store in the DB: the last applied
// sequence of each key, for LatestWins and Resequence across processes.
// Advance is one conditional upsert, so concurrent advances of a key keep
// the highest.
type SequenceStore struct {
	db *DB
}

var _ sequence.Store = (*SequenceStore)(nil)

// Last implements sequence.Store.
func (s *SequenceStore) Last(ctx context.Context, key string) (uint64, error) {
	var last int64
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT COALESCE((SELECT last FROM §sequences WHERE key = $1), 0)`), key).Scan(&last)
	if err != nil {
		return 0, s.db.wrap(fmt.Sprintf("last sequence of %q", key), err)
	}
	return uint64(last), nil
}

// Advance implements sequence.Store. Sequences above the largest
// int64 are refused.
func (s *SequenceStore) Advance(ctx context.Context, key string, seq uint64) (bool, error) {
	if seq > 1<<63-1 {
		return false, fmt.Errorf("%w: postgres: sequence %d of %q is over the largest int64", crossbus.ErrInvalidOption, seq, key)
	}
	tag, err := s.db.conn(ctx).Exec(ctx, s.db.q(`INSERT INTO §sequences AS s (key, last) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET last = excluded.last WHERE s.last < excluded.last`), key, int64(seq))
	if err != nil {
		return false, s.db.wrap(fmt.Sprintf("advance sequence of %q", key), err)
	}
	return tag.RowsAffected() == 1, nil
}
