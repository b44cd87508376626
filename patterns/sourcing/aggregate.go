package sourcing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/crossbus/crossbus"
)

// Aggregate loads and changes the state S of event-sourced entities, one
// stream per entity: the state is the fold of Apply over the stream's
// events, started from a snapshot when one exists.
//
// Snapshots hold S encoded as JSON, so S's exported fields must carry the
// whole state. Change Schema when S changes shape: snapshots of another
// schema are ignored and the state is replayed from the first event.
type Aggregate[S any] struct {
	Store Store
	// Apply returns the state after one more event. It must be
	// deterministic: replay and snapshot loading rely on it.
	Apply func(state S, r Record) (S, error)
	// Initial returns the state of an empty stream (default: S's zero value).
	Initial func() S
	// Snapshots, with SnapshotEvery > 0, saves a snapshot whenever a loaded
	// or changed state is SnapshotEvery or more events past its newest
	// snapshot.
	Snapshots     SnapshotStore
	SnapshotEvery uint64
	// Schema tags snapshots (default "1").
	Schema string
	// MaxRetries bounds how often Execute retries after a concurrency
	// conflict (default 3).
	MaxRetries int
}

// State is a loaded aggregate state.
type State[S any] struct {
	Value   S
	Version uint64 // the stream version Value includes
	// SnapshotVersion is the version of the snapshot the load started from
	// (0 when it replayed from the first event).
	SnapshotVersion uint64
	// Replayed counts the events applied by the load.
	Replayed int
}

func (a *Aggregate[S]) schema() string {
	if a.Schema != "" {
		return a.Schema
	}
	return "1"
}

func (a *Aggregate[S]) initial() S {
	if a.Initial != nil {
		return a.Initial()
	}
	var zero S
	return zero
}

func (a *Aggregate[S]) check() error {
	if a.Store == nil || a.Apply == nil {
		return fmt.Errorf("sourcing: Aggregate needs a Store and an Apply func: %w", crossbus.ErrInvalidOption)
	}
	return nil
}

// Replay rebuilds the state from the stream's first event, ignoring
// snapshots.
func (a *Aggregate[S]) Replay(ctx context.Context, stream string) (State[S], error) {
	if err := a.check(); err != nil {
		return State[S]{}, err
	}
	return a.fold(ctx, stream, State[S]{Value: a.initial()})
}

// Load returns the state from the newest usable snapshot plus the events
// after it (or from the first event), saving a new snapshot when the
// strategy asks for one.
func (a *Aggregate[S]) Load(ctx context.Context, stream string) (State[S], error) {
	if err := a.check(); err != nil {
		return State[S]{}, err
	}
	st := State[S]{Value: a.initial()}
	if a.Snapshots != nil {
		snap, ok, err := a.Snapshots.LoadSnapshot(ctx, stream)
		if err != nil {
			return st, fmt.Errorf("sourcing: load snapshot of %q: %w", stream, err)
		}
		if ok && snap.Schema == a.schema() {
			v := a.initial()
			if err := json.Unmarshal(snap.State, &v); err != nil {
				return st, fmt.Errorf("sourcing: decode snapshot of %q at version %d: %w", stream, snap.Version, err)
			}
			st = State[S]{Value: v, Version: snap.Version, SnapshotVersion: snap.Version}
		}
	}
	st, err := a.fold(ctx, stream, st)
	if err != nil {
		return st, err
	}
	return st, a.maybeSnapshot(ctx, stream, &st)
}

func (a *Aggregate[S]) fold(ctx context.Context, stream string, st State[S]) (State[S], error) {
	for r, err := range a.Store.ReadStream(ctx, stream, st.Version+1) {
		if err != nil {
			return st, fmt.Errorf("sourcing: read %q: %w", stream, err)
		}
		v, err := a.Apply(st.Value, r)
		if err != nil {
			return st, fmt.Errorf("sourcing: apply %q version %d (%s): %w", stream, r.Version, r.Event.Type(), err)
		}
		st.Value, st.Version = v, r.Version
		st.Replayed++
	}
	return st, nil
}

// TakeSnapshot saves st as the stream's snapshot.
func (a *Aggregate[S]) TakeSnapshot(ctx context.Context, stream string, st State[S]) error {
	if a.Snapshots == nil {
		return fmt.Errorf("sourcing: aggregate has no SnapshotStore: %w", crossbus.ErrInvalidOption)
	}
	b, err := json.Marshal(st.Value)
	if err != nil {
		return fmt.Errorf("sourcing: encode snapshot of %q: %w", stream, err)
	}
	return a.Snapshots.SaveSnapshot(ctx, Snapshot{Stream: stream, Version: st.Version, Schema: a.schema(), State: b})
}

func (a *Aggregate[S]) maybeSnapshot(ctx context.Context, stream string, st *State[S]) error {
	if a.Snapshots == nil || a.SnapshotEvery == 0 || st.Version-st.SnapshotVersion < a.SnapshotEvery {
		return nil
	}
	if err := a.TakeSnapshot(ctx, stream, *st); err != nil {
		return err
	}
	st.SnapshotVersion = st.Version
	return nil
}

// Execute loads the state, asks decide for the events that a command
// produces, and appends them expecting the version it loaded. On a
// concurrency conflict it reloads and decides again (MaxRetries times). It
// returns the state after the new events. decide returning no events changes
// nothing; an error from decide is returned as is.
func (a *Aggregate[S]) Execute(ctx context.Context, stream string, decide func(S) ([]*crossbus.Event, error)) (State[S], AppendResult, error) {
	retries := a.MaxRetries
	if retries <= 0 {
		retries = 3
	}
	for attempt := 0; ; attempt++ {
		st, err := a.Load(ctx, stream)
		if err != nil {
			return st, AppendResult{}, err
		}
		events, err := decide(st.Value)
		if err != nil || len(events) == 0 {
			return st, AppendResult{Version: st.Version}, err
		}
		res, err := a.Store.Append(ctx, stream, Exactly(st.Version), events...)
		if errors.Is(err, ErrConflict) && attempt < retries {
			continue
		}
		if err != nil {
			return st, res, err
		}
		st, err = a.fold(ctx, stream, st)
		if err != nil {
			return st, res, err
		}
		return st, res, a.maybeSnapshot(ctx, stream, &st)
	}
}
