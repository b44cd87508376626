package chain

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
)

// Store keeps chain instances and the step claims that make steps
// idempotent. stores/storetest.TestChainStore checks an implementation; the
// memory store here and stores/sqlite pass it. A Store is safe for
// concurrent use.
type Store interface {
	// Create stores a new instance with Revision 1 (set on inst). It returns
	// an error matching ErrExists when the id is taken.
	Create(ctx context.Context, inst *Instance) error
	// Load returns a copy of the instance, or an error matching ErrNotFound.
	Load(ctx context.Context, id string) (*Instance, error)
	// Save replaces the instance if its stored Revision equals
	// inst.Revision, and then increments inst.Revision. Otherwise it
	// returns an error matching ErrStale (or ErrNotFound).
	Save(ctx context.Context, inst *Instance) error
	// Unfinished returns the chain's instances that are running or
	// compensating.
	Unfinished(ctx context.Context, chain string) ([]*Instance, error)

	// BeginStep claims a step execution for lease. The claim's Status is
	// ClaimNew (with a Token) when the caller should run the step,
	// ClaimInProgress when another worker holds a live claim, or
	// ClaimCompleted (with the recorded Output) when the step already ran.
	BeginStep(ctx context.Context, key StepKey, lease time.Duration) (StepClaim, error)
	// FinishStep records the step's output; later BeginSteps report it
	// completed. It fails with crossbus.ErrLeaseLost if token no longer
	// holds the claim.
	FinishStep(ctx context.Context, key StepKey, token string, output json.RawMessage) error
	// ReleaseStep drops the claim so a retry can run the step. It fails with
	// crossbus.ErrLeaseLost if token no longer holds the claim.
	ReleaseStep(ctx context.Context, key StepKey, token string) error
}

// StepKey names one step execution: a step of an instance, or its
// compensation.
type StepKey struct {
	Instance     string
	Step         string
	Compensation bool
}

// Kind is "do" for a step and "undo" for its compensation.
func (k StepKey) Kind() string {
	if k.Compensation {
		return "undo"
	}
	return "do"
}

// StepClaim is the result of BeginStep.
type StepClaim struct {
	Status crossbus.ClaimStatus
	Token  string
	Output json.RawMessage // the recorded output when Status is ClaimCompleted
}

// MemoryStore is an in-process Store. It keeps every guarantee but nothing
// survives the process; use stores/sqlite for durable state.
type MemoryStore struct {
	mu        sync.Mutex
	now       func() time.Time
	instances map[string]*Instance
	steps     map[StepKey]*stepRecord
}

type stepRecord struct {
	token   string
	done    bool
	expires time.Time
	output  json.RawMessage
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{now: time.Now, instances: map[string]*Instance{}, steps: map[StepKey]*stepRecord{}}
}

// Create implements Store.
func (m *MemoryStore) Create(ctx context.Context, inst *Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if inst.ID == "" {
		return fmt.Errorf("%w: instance has no ID", crossbus.ErrInvalidOption)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.instances[inst.ID]; ok {
		return fmt.Errorf("chain: instance %q: %w", inst.ID, ErrExists)
	}
	inst.Revision = 1
	m.instances[inst.ID] = inst.Clone()
	return nil
}

// Load implements Store.
func (m *MemoryStore) Load(ctx context.Context, id string) (*Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inst, ok := m.instances[id]
	if !ok {
		return nil, fmt.Errorf("chain: instance %q: %w", id, ErrNotFound)
	}
	return inst.Clone(), nil
}

// Save implements Store.
func (m *MemoryStore) Save(ctx context.Context, inst *Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.instances[inst.ID]
	if !ok {
		return fmt.Errorf("chain: instance %q: %w", inst.ID, ErrNotFound)
	}
	if cur.Revision != inst.Revision {
		return fmt.Errorf("chain: instance %q at revision %d, saved from %d: %w", inst.ID, cur.Revision, inst.Revision, ErrStale)
	}
	inst.Revision++
	m.instances[inst.ID] = inst.Clone()
	return nil
}

// Unfinished implements Store.
func (m *MemoryStore) Unfinished(ctx context.Context, chain string) ([]*Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Instance
	for _, inst := range m.instances {
		if inst.Chain == chain && !inst.Status.Finished() {
			out = append(out, inst.Clone())
		}
	}
	return out, nil
}

// BeginStep implements Store.
func (m *MemoryStore) BeginStep(ctx context.Context, key StepKey, lease time.Duration) (StepClaim, error) {
	if err := ctx.Err(); err != nil {
		return StepClaim{}, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.steps[key]; ok {
		if r.done {
			return StepClaim{Status: crossbus.ClaimCompleted, Output: append(json.RawMessage(nil), r.output...)}, nil
		}
		if now.Before(r.expires) {
			return StepClaim{Status: crossbus.ClaimInProgress}, nil
		}
	}
	r := &stepRecord{token: claimtoken.New(), expires: now.Add(lease)}
	m.steps[key] = r
	return StepClaim{Status: crossbus.ClaimNew, Token: r.token}, nil
}

func (m *MemoryStore) held(key StepKey, token string) (*stepRecord, error) {
	r, ok := m.steps[key]
	if !ok || r.done || r.token != token || !m.now().Before(r.expires) {
		return nil, fmt.Errorf("chain: step %q of %q (%s): %w", key.Step, key.Instance, key.Kind(), crossbus.ErrLeaseLost)
	}
	return r, nil
}

// FinishStep implements Store.
func (m *MemoryStore) FinishStep(ctx context.Context, key StepKey, token string, output json.RawMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.held(key, token)
	if err != nil {
		return err
	}
	r.done, r.token, r.output = true, "", append(json.RawMessage(nil), output...)
	return nil
}

// ReleaseStep implements Store.
func (m *MemoryStore) ReleaseStep(ctx context.Context, key StepKey, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.held(key, token); err != nil {
		return err
	}
	delete(m.steps, key)
	return nil
}
