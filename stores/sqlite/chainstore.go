package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/chain"
)

// ChainStore is a chain.Store in the DB's file. Instances are stored as JSON
// with their status and revision in columns; Save is a compare-and-set on the
// revision. Get it with DB.Chains.
type ChainStore struct {
	db *DB
}

var _ chain.Store = (*ChainStore)(nil)

const (
	qChainCreate = `INSERT INTO chain_instances (id, chain, status, revision, updated, body) VALUES (?, ?, ?, 1, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	qChainSave = `UPDATE chain_instances SET status = ?1, revision = revision + 1, updated = ?2, body = ?3
		WHERE id = ?4 AND revision = ?5`
	qStepClaim = `INSERT INTO chain_steps (instance, step, kind, token, done, expires) VALUES (?1, ?2, ?3, ?4, 0, ?5)
		ON CONFLICT (instance, step, kind) DO UPDATE SET token = excluded.token, expires = excluded.expires, output = NULL
		WHERE chain_steps.done = 0 AND chain_steps.expires <= ?6`
	qStepStatus  = `SELECT done, output FROM chain_steps WHERE instance = ? AND step = ? AND kind = ?`
	qStepFinish  = `UPDATE chain_steps SET done = 1, token = '', output = ?1 WHERE instance = ?2 AND step = ?3 AND kind = ?4 AND token = ?5 AND done = 0 AND expires > ?6`
	qStepRelease = `DELETE FROM chain_steps WHERE instance = ?1 AND step = ?2 AND kind = ?3 AND token = ?4 AND done = 0 AND expires > ?5`
	qStepPurge   = `DELETE FROM chain_steps WHERE instance IN (SELECT id FROM chain_instances
		WHERE status IN ('completed', 'compensated', 'compensation_failed') AND updated < ?)`
	qChainPurge = `DELETE FROM chain_instances WHERE status IN ('completed', 'compensated', 'compensation_failed') AND updated < ?`
)

// Create implements chain.Store.
func (s *ChainStore) Create(ctx context.Context, inst *chain.Instance) error {
	if inst.ID == "" {
		return fmt.Errorf("%w: instance has no ID", crossbus.ErrInvalidOption)
	}
	inst.Revision = 1
	body, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("sqlite: encode instance %q: %w", inst.ID, err)
	}
	res, err := s.db.writeStmt(ctx, qChainCreate).ExecContext(ctx, inst.ID, inst.Chain, string(inst.Status), inst.Updated.UnixNano(), body)
	if err != nil {
		return fmt.Errorf("sqlite: create instance %q: %w", inst.ID, wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: instance %q: %w", inst.ID, chain.ErrExists)
	}
	return nil
}

// Load implements chain.Store.
func (s *ChainStore) Load(ctx context.Context, id string) (*chain.Instance, error) {
	var body []byte
	var rev int64
	err := s.db.r.QueryRowContext(ctx, `SELECT body, revision FROM chain_instances WHERE id = ?`, id).Scan(&body, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: instance %q: %w", id, chain.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: load instance %q: %w", id, wrapErr(err))
	}
	return decodeInstance(body, rev)
}

func decodeInstance(body []byte, rev int64) (*chain.Instance, error) {
	inst := &chain.Instance{}
	if err := json.Unmarshal(body, inst); err != nil {
		return nil, fmt.Errorf("sqlite: decode instance: %w", err)
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
		return fmt.Errorf("sqlite: encode instance %q: %w", inst.ID, err)
	}
	res, err := s.db.writeStmt(ctx, qChainSave).ExecContext(ctx, string(inst.Status), inst.Updated.UnixNano(), body, inst.ID, inst.Revision)
	if err != nil {
		return fmt.Errorf("sqlite: save instance %q: %w", inst.ID, wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 1 {
		inst.Revision++
		return nil
	}
	var rev int64
	err = s.db.r.QueryRowContext(ctx, `SELECT revision FROM chain_instances WHERE id = ?`, inst.ID).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: instance %q: %w", inst.ID, chain.ErrNotFound)
	}
	return fmt.Errorf("sqlite: instance %q at revision %d, saved from %d: %w", inst.ID, rev, inst.Revision, chain.ErrStale)
}

// Unfinished implements chain.Store.
func (s *ChainStore) Unfinished(ctx context.Context, name string) ([]*chain.Instance, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT body, revision FROM chain_instances
		WHERE chain = ? AND status IN ('running', 'compensating')`, name)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unfinished instances of %q: %w", name, wrapErr(err))
	}
	defer rows.Close()
	var out []*chain.Instance
	for rows.Next() {
		var body []byte
		var rev int64
		if err := rows.Scan(&body, &rev); err != nil {
			return nil, err
		}
		inst, err := decodeInstance(body, rev)
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, rows.Err()
}

// BeginStep implements chain.Store.
func (s *ChainStore) BeginStep(ctx context.Context, key chain.StepKey, lease time.Duration) (chain.StepClaim, error) {
	if err := ctx.Err(); err != nil {
		return chain.StepClaim{}, err
	}
	now := time.Now()
	token := claimtoken.New()
	res, err := s.db.writeStmt(ctx, qStepClaim).ExecContext(ctx, key.Instance, key.Step, key.Kind(), token, now.Add(lease).UnixNano(), now.UnixNano())
	if err != nil {
		return chain.StepClaim{}, fmt.Errorf("sqlite: claim step %q of %q: %w", key.Step, key.Instance, wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return chain.StepClaim{Status: crossbus.ClaimNew, Token: token}, nil
	}
	var done bool
	var output []byte
	err = s.db.writeStmt(ctx, qStepStatus).QueryRowContext(ctx, key.Instance, key.Step, key.Kind()).Scan(&done, &output)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return chain.StepClaim{}, fmt.Errorf("sqlite: claim step %q of %q: %w", key.Step, key.Instance, wrapErr(err))
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
	return s.settle(ctx, key, qStepFinish, []byte(output), key.Instance, key.Step, key.Kind(), token, time.Now().UnixNano())
}

// ReleaseStep implements chain.Store.
func (s *ChainStore) ReleaseStep(ctx context.Context, key chain.StepKey, token string) error {
	return s.settle(ctx, key, qStepRelease, key.Instance, key.Step, key.Kind(), token, time.Now().UnixNano())
}

func (s *ChainStore) settle(ctx context.Context, key chain.StepKey, query string, args ...any) error {
	res, err := s.db.writeStmt(ctx, query).ExecContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: step %q of %q: %w", key.Step, key.Instance, wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: step %q of %q (%s): %w", key.Step, key.Instance, key.Kind(), crossbus.ErrLeaseLost)
	}
	return nil
}

// Purge deletes instances that finished (completed, compensated or
// compensation failed) and were last updated before t, with their step
// records, and returns how many instances it deleted.
func (s *ChainStore) Purge(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := s.db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.txStmt(ctx, tx, qStepPurge).ExecContext(ctx, t.UnixNano()); err != nil {
			return err
		}
		res, err := s.db.txStmt(ctx, tx, qChainPurge).ExecContext(ctx, t.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge chain instances: %w", wrapErr(err))
	}
	return n, nil
}
