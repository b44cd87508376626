package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/leader"
)

// ChainStore is a chain.Store in the DB. Instances are stored as JSON with
// their status and revision in columns; Save is a compare-and-set on the
// revision. Step claims' leases are measured on the database server's
// clock. Get it with DB.Chains.
//
// Fencing: when the context of Create or Save carries a leader lease
// (leader.WithLease; a Coordinator with a leader store passes one), the
// write commits only while the lease's term is current in this database's
// leases, and otherwise fails with an error matching leader.ErrFenced.
type ChainStore struct {
	db *DB
}

var _ chain.Store = (*ChainStore)(nil)

const (
	qChainCreate = `INSERT INTO §chain_instances (id, chain, status, revision, updated, body) VALUES ($1, $2, $3, 1, $4, $5)
		ON CONFLICT (id) DO NOTHING`
	qChainSave = `UPDATE §chain_instances SET status = $1, revision = revision + 1, updated = $2, body = $3
		WHERE id = $4 AND revision = $5`
	qStepClaim = `WITH claim AS (
		INSERT INTO §chain_steps AS c (instance, step, kind, token, done, expires)
		VALUES ($1, $2, $3, $4, false, statement_timestamp() + $5 * interval '1 microsecond')
		ON CONFLICT (instance, step, kind) DO UPDATE SET token = excluded.token, expires = excluded.expires, output = NULL
		WHERE NOT c.done AND c.expires <= statement_timestamp()
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM claim)`
	qStepStatus  = `SELECT done, output FROM §chain_steps WHERE instance = $1 AND step = $2 AND kind = $3`
	qStepFinish  = `UPDATE §chain_steps SET done = true, token = '', output = $1 WHERE instance = $2 AND step = $3 AND kind = $4 AND token = $5 AND NOT done AND expires > statement_timestamp()`
	qStepRelease = `DELETE FROM §chain_steps WHERE instance = $1 AND step = $2 AND kind = $3 AND token = $4 AND NOT done AND expires > statement_timestamp()`
	qStepPurge   = `DELETE FROM §chain_steps WHERE instance IN (SELECT id FROM §chain_instances
		WHERE status IN ('completed', 'compensated', 'compensation_failed') AND updated < $1)`
	qChainPurge = `DELETE FROM §chain_instances WHERE status IN ('completed', 'compensated', 'compensation_failed') AND updated < $1`
)

// fenced runs a single write statement: in a transaction behind the fence
// when ctx carries a lease, else on its own.
func (s *ChainStore) fenced(ctx context.Context, op, query string, args ...any) (int64, error) {
	if _, ok := leader.LeaseFrom(ctx); !ok {
		tag, err := s.db.conn(ctx).Exec(ctx, s.db.q(query), args...)
		if err != nil {
			return 0, s.db.wrap(op, err)
		}
		return tag.RowsAffected(), nil
	}
	var n int64
	err := s.db.writeTx(ctx, op, func(tx pgx.Tx) error {
		if err := s.db.fence(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, s.db.q(query), args...)
		if err != nil {
			return s.db.wrap(op, err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// Create implements chain.Store.
func (s *ChainStore) Create(ctx context.Context, inst *chain.Instance) error {
	if inst.ID == "" {
		return fmt.Errorf("%w: instance has no ID", crossbus.ErrInvalidOption)
	}
	inst.Revision = 1
	body, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("postgres: encode instance %q: %w", inst.ID, err)
	}
	n, err := s.fenced(ctx, fmt.Sprintf("create instance %q", inst.ID), qChainCreate, inst.ID, inst.Chain, string(inst.Status), inst.Updated, body)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres: instance %q: %w", inst.ID, chain.ErrExists)
	}
	return nil
}

// Load implements chain.Store.
func (s *ChainStore) Load(ctx context.Context, id string) (*chain.Instance, error) {
	var body []byte
	var rev int64
	err := s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT body, revision FROM §chain_instances WHERE id = $1`), id).Scan(&body, &rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: instance %q: %w", id, chain.ErrNotFound)
	}
	if err != nil {
		return nil, s.db.wrap(fmt.Sprintf("load instance %q", id), err)
	}
	return decodeInstance(body, rev)
}

func decodeInstance(body []byte, rev int64) (*chain.Instance, error) {
	inst := &chain.Instance{}
	if err := json.Unmarshal(body, inst); err != nil {
		return nil, fmt.Errorf("postgres: decode instance: %w", err)
	}
	inst.Revision = rev
	return inst, nil
}

// Save implements chain.Store.
func (s *ChainStore) Save(ctx context.Context, inst *chain.Instance) error {
	next := *inst
	next.Revision++
	body, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("postgres: encode instance %q: %w", inst.ID, err)
	}
	n, err := s.fenced(ctx, fmt.Sprintf("save instance %q", inst.ID), qChainSave, string(inst.Status), inst.Updated, body, inst.ID, inst.Revision)
	if err != nil {
		return err
	}
	if n == 1 {
		inst.Revision++
		return nil
	}
	var rev int64
	err = s.db.conn(ctx).QueryRow(ctx, s.db.q(`SELECT revision FROM §chain_instances WHERE id = $1`), inst.ID).Scan(&rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: instance %q: %w", inst.ID, chain.ErrNotFound)
	}
	return fmt.Errorf("postgres: instance %q at revision %d, saved from %d: %w", inst.ID, rev, inst.Revision, chain.ErrStale)
}

// Unfinished implements chain.Store.
func (s *ChainStore) Unfinished(ctx context.Context, name string) ([]*chain.Instance, error) {
	rows, err := s.db.conn(ctx).Query(ctx, s.db.q(`SELECT body, revision FROM §chain_instances
		WHERE chain = $1 AND status IN ('running', 'compensating')`), name)
	if err != nil {
		return nil, s.db.wrap(fmt.Sprintf("unfinished instances of %q", name), err)
	}
	defer rows.Close()
	var out []*chain.Instance
	for rows.Next() {
		var body []byte
		var rev int64
		if err := rows.Scan(&body, &rev); err != nil {
			return nil, s.db.wrap(fmt.Sprintf("unfinished instances of %q", name), err)
		}
		inst, err := decodeInstance(body, rev)
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	if err := rows.Err(); err != nil {
		return nil, s.db.wrap(fmt.Sprintf("unfinished instances of %q", name), err)
	}
	return out, nil
}

// BeginStep implements chain.Store.
func (s *ChainStore) BeginStep(ctx context.Context, key chain.StepKey, lease time.Duration) (chain.StepClaim, error) {
	if err := ctx.Err(); err != nil {
		return chain.StepClaim{}, err
	}
	op := fmt.Sprintf("claim step %q of %q", key.Step, key.Instance)
	token := claimtoken.New()
	var claimed bool
	q := s.db.conn(ctx)
	if err := q.QueryRow(ctx, s.db.q(qStepClaim), key.Instance, key.Step, key.Kind(), token, micros(lease)).Scan(&claimed); err != nil {
		return chain.StepClaim{}, s.db.wrap(op, err)
	}
	if claimed {
		return chain.StepClaim{Status: crossbus.ClaimNew, Token: token}, nil
	}
	var done bool
	var output []byte
	err := q.QueryRow(ctx, s.db.q(qStepStatus), key.Instance, key.Step, key.Kind()).Scan(&done, &output)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return chain.StepClaim{}, s.db.wrap(op, err)
	}
	if done {
		return chain.StepClaim{Status: crossbus.ClaimCompleted, Output: output}, nil
	}
	return chain.StepClaim{Status: crossbus.ClaimInProgress}, nil
}

// FinishStep implements chain.Store.
func (s *ChainStore) FinishStep(ctx context.Context, key chain.StepKey, token string, output json.RawMessage) error {
	if output == nil {
		output = json.RawMessage{}
	}
	return s.settle(ctx, key, qStepFinish, []byte(output), key.Instance, key.Step, key.Kind(), token)
}

// ReleaseStep implements chain.Store.
func (s *ChainStore) ReleaseStep(ctx context.Context, key chain.StepKey, token string) error {
	return s.settle(ctx, key, qStepRelease, key.Instance, key.Step, key.Kind(), token)
}

func (s *ChainStore) settle(ctx context.Context, key chain.StepKey, query string, args ...any) error {
	tag, err := s.db.conn(ctx).Exec(ctx, s.db.q(query), args...)
	if err != nil {
		return s.db.wrap(fmt.Sprintf("step %q of %q", key.Step, key.Instance), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: step %q of %q (%s): %w", key.Step, key.Instance, key.Kind(), crossbus.ErrLeaseLost)
	}
	return nil
}

// Purge deletes instances that finished (completed, compensated or
// compensation failed) and were last updated before t, with their step
// records, and returns how many instances it deleted.
func (s *ChainStore) Purge(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := s.db.writeTx(ctx, "purge chain instances", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.db.q(qStepPurge), t); err != nil {
			return s.db.wrap("purge chain steps", err)
		}
		tag, err := tx.Exec(ctx, s.db.q(qChainPurge), t)
		if err != nil {
			return s.db.wrap("purge chain instances", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}
