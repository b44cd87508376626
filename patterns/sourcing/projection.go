package sourcing

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
)

// Projector is a catch-up subscription over a store's global order: it
// hands every event after its checkpoint to Handle, in position order, and
// saves its position under Name, so a restarted projector resumes where the
// last one stopped. Delivery is at least once: events handled after the last
// saved checkpoint are handled again after a crash, so Handle must be
// idempotent (or keep its state and checkpoint in one transaction, as the
// sqlite store allows).
type Projector struct {
	Name        string
	Store       Store
	Checkpoints CheckpointStore
	Handle      func(ctx context.Context, r Record) error
	// CheckpointEvery saves the position after this many events (default
	// 100) and always when a catch-up reaches the head.
	CheckpointEvery int
	// PollInterval is how often Run looks for events appended by other
	// processes (default 200ms); appends in this process wake it at once when
	// the store implements Notifier.
	PollInterval time.Duration
}

func (p *Projector) check() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("sourcing: Projector.Name is empty: %w", crossbus.ErrInvalidOption)
	case p.Store == nil || p.Checkpoints == nil:
		return fmt.Errorf("sourcing: projector %q needs a Store and a CheckpointStore: %w", p.Name, crossbus.ErrInvalidOption)
	case p.Handle == nil:
		return fmt.Errorf("sourcing: projector %q has no Handle func: %w", p.Name, crossbus.ErrInvalidOption)
	}
	return nil
}

// CatchUp handles every event after the checkpoint up to the store's head
// and returns how many it handled. When Handle fails it saves the position
// of the last event handled and returns the error (the failed event is
// handled again by the next CatchUp).
func (p *Projector) CatchUp(ctx context.Context) (int, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	from, err := p.Checkpoints.Checkpoint(ctx, p.Name)
	if err != nil {
		return 0, fmt.Errorf("sourcing: projector %q: read checkpoint: %w", p.Name, err)
	}
	every := p.CheckpointEvery
	if every <= 0 {
		every = 100
	}
	last, n, sinceSave := from, 0, 0
	save := func() error {
		if last == from && sinceSave == 0 {
			return nil
		}
		if err := p.Checkpoints.SaveCheckpoint(context.WithoutCancel(ctx), p.Name, last); err != nil {
			return fmt.Errorf("sourcing: projector %q: save checkpoint %d: %w", p.Name, last, err)
		}
		sinceSave = 0
		return nil
	}
	for r, err := range p.Store.ReadAll(ctx, from+1) {
		if err != nil {
			return n, joinSave(fmt.Errorf("sourcing: projector %q: read: %w", p.Name, err), save())
		}
		if err := p.Handle(ctx, r); err != nil {
			return n, joinSave(fmt.Errorf("sourcing: projector %q: event at position %d (%s v%d): %w", p.Name, r.Position, r.Stream, r.Version, err), save())
		}
		last = r.Position
		n++
		sinceSave++
		if sinceSave >= every {
			if err := save(); err != nil {
				return n, err
			}
		}
	}
	return n, save()
}

func joinSave(err, saveErr error) error {
	if saveErr != nil {
		return fmt.Errorf("%w (and %v)", err, saveErr)
	}
	return err
}

// Run catches up, then follows new events until ctx ends (returning nil) or
// Handle fails (returning its error).
func (p *Projector) Run(ctx context.Context) error {
	if err := p.check(); err != nil {
		return err
	}
	poll := p.PollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	notifier, _ := p.Store.(Notifier)
	for {
		var changed <-chan struct{}
		if notifier != nil {
			changed = notifier.Changed()
		}
		if _, err := p.CatchUp(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
