package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
)

// ReplayRequest says what a replay re-publishes and where.
type ReplayRequest struct {
	// ID names the replay (generated when empty). Replaying again with the
	// ID of a replay that did not finish resumes it.
	ID string `json:"id,omitempty"`
	// Topic is the archived topic to read.
	Topic string `json:"topic"`
	// From (inclusive) and To (exclusive) bound the publish time of the
	// events replayed. A zero To is the time the replay starts.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Pattern, when set, replays only the events it matches (an event
	// pattern, see crossbus.CompilePattern).
	Pattern string `json:"pattern,omitempty"`
	// Target is the topic the events are published to (default Topic).
	Target string `json:"target,omitempty"`
	// Subscription, when set, limits the replay to one subscription of
	// Target: the events carry ExtTargetSubscription, and the portable
	// layer acks them unhandled on every other subscription.
	Subscription string `json:"subscription,omitempty"`
	// Rate is how many events per second are published (required, > 0).
	Rate float64 `json:"rate"`
}

// Replay statuses.
const (
	ReplayRunning     = "running"
	ReplayDone        = "done"
	ReplayInterrupted = "interrupted" // stopped by its context or a crash; resume it
	ReplayFailed      = "failed"      // a publish failed; resume it once the cause is fixed
)

// ReplayState is a replay's request and progress, as the store keeps it.
type ReplayState struct {
	ReplayRequest
	Status string `json:"status"`
	// AfterSeq is the Seq of the last archived event dealt with: a
	// resumed replay continues after it.
	AfterSeq int64 `json:"afterSeq"`
	// Published is how many events were re-published, Total how many the
	// time range held when the replay started (before the pattern).
	Published int64     `json:"published"`
	Scanned   int64     `json:"scanned"`
	Total     int64     `json:"total"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	Error     string    `json:"error,omitempty"`
}

// check refuses requests that cannot work or would never end.
func (r *ReplayRequest) check() (*crossbus.EventPattern, error) {
	bad := func(format string, a ...any) error {
		return errorf("%w: replay: "+format, append([]any{crossbus.ErrInvalidOption}, a...)...)
	}
	if err := crossbus.ValidateName(r.Topic); err != nil {
		return nil, errorf("replay topic: %w", err)
	}
	if r.Target == "" {
		r.Target = r.Topic
	}
	if err := crossbus.ValidateName(r.Target); err != nil {
		return nil, errorf("replay target: %w", err)
	}
	if r.Subscription != "" {
		if err := crossbus.ValidateName(r.Subscription); err != nil {
			return nil, errorf("replay subscription: %w", err)
		}
	}
	if !(r.Rate > 0) {
		return nil, bad("rate must be above 0 events per second, got %v", r.Rate)
	}
	if !r.To.IsZero() && !r.From.Before(r.To) {
		return nil, bad("the time range is empty or the wrong way round: from %s is not before to %s",
			r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	if r.Target == r.Topic && r.Pattern == "" && r.Subscription == "" {
		return nil, bad("replaying topic %q into itself for every subscription without a pattern would hand every subscriber its events again; give a pattern, a subscription, or another target topic", r.Topic)
	}
	var p *crossbus.EventPattern
	if r.Pattern != "" {
		var err error
		if p, err = crossbus.CompilePattern(r.Pattern); err != nil {
			return nil, errorf("replay pattern: %w", err)
		}
	}
	return p, nil
}

// Replayer re-publishes archived events.
type Replayer struct {
	bus   *crossbus.Bus
	store ArchiveStore
}

// NewReplayer returns a Replayer that reads store and publishes on bus.
func NewReplayer(bus *crossbus.Bus, store ArchiveStore) (*Replayer, error) {
	if bus == nil || store == nil {
		return nil, errorf("%w: NewReplayer needs a bus and a store", crossbus.ErrInvalidOption)
	}
	return &Replayer{bus: bus, store: store}, nil
}

// Store returns the replayer's archive store.
func (rp *Replayer) Store() ArchiveStore { return rp.store }

// Prepare checks a request, saves it as a new replay (or returns the saved
// state of an unfinished one with the same ID) and returns its state; Run
// then runs it. Start does both in one call.
func (rp *Replayer) Prepare(ctx context.Context, req ReplayRequest) (ReplayState, error) {
	if req.ID != "" {
		st, err := rp.store.LoadReplay(ctx, req.ID)
		if err == nil {
			if st.Status == ReplayDone {
				return st, errorf("%w: replay %q is already done", crossbus.ErrInvalidOption, req.ID)
			}
			return st, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return ReplayState{}, err
		}
		if err := crossbus.ValidateName(req.ID); err != nil {
			return ReplayState{}, errorf("replay id: %w", err)
		}
	}
	if _, err := req.check(); err != nil {
		return ReplayState{}, err
	}
	now := time.Now().UTC()
	if req.To.IsZero() {
		req.To = now
	}
	if req.ID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		req.ID = "replay-" + hex.EncodeToString(b[:])
	}
	total, err := rp.store.Count(ctx, ArchiveQuery{Topic: req.Topic, From: req.From, To: req.To})
	if err != nil {
		return ReplayState{}, errorf("replay %s: count: %w", req.ID, err)
	}
	st := ReplayState{ReplayRequest: req, Status: ReplayInterrupted, Total: total, Started: now, Updated: now}
	if err := rp.store.SaveReplay(ctx, st); err != nil {
		return ReplayState{}, errorf("replay %s: save: %w", req.ID, err)
	}
	return st, nil
}

// Start prepares and runs a replay (see Prepare and Run).
func (rp *Replayer) Start(ctx context.Context, req ReplayRequest, progress func(ReplayState)) (ReplayState, error) {
	st, err := rp.Prepare(ctx, req)
	if err != nil {
		return st, err
	}
	return rp.Run(ctx, st.ID, progress)
}

// Resume runs an unfinished replay from where it stopped.
func (rp *Replayer) Resume(ctx context.Context, id string, progress func(ReplayState)) (ReplayState, error) {
	return rp.Run(ctx, id, progress)
}

// replayPage is how many archived events a replay reads at a time.
const replayPage = 256

// Run runs the saved replay id from its saved progress until it is done,
// ctx ends (status interrupted) or a publish fails (status failed); the
// progress is saved after every event, so a replay killed at any point
// resumes after the last event it published. Killed between a publish and
// saving its progress, the resumed replay publishes that one event again
// with the same id and ExtReplayed value: brokers that de-duplicate by id
// (NATS JetStream within its duplicate window) drop it, idempotent
// consumers skip it. Events keep their id, source and data and carry
// ExtReplayed (the replay's ID).
func (rp *Replayer) Run(ctx context.Context, id string, progress func(ReplayState)) (ReplayState, error) {
	st, err := rp.store.LoadReplay(ctx, id)
	if err != nil {
		return ReplayState{}, err
	}
	if st.Status == ReplayDone {
		return st, nil
	}
	req := st.ReplayRequest
	pattern, err := req.check()
	if err != nil {
		return st, err
	}
	save := func(status, msg string) error {
		st.Status, st.Error, st.Updated = status, msg, time.Now().UTC()
		err := rp.store.SaveReplay(context.WithoutCancel(ctx), st)
		if progress != nil {
			progress(st)
		}
		return err
	}
	if err := save(ReplayRunning, ""); err != nil {
		return st, errorf("replay %s: save progress: %w", id, err)
	}
	pace := newPacer(req.Rate)
	for {
		page, err := rp.store.Scan(ctx, ArchiveQuery{Topic: req.Topic, From: req.From, To: req.To, AfterSeq: st.AfterSeq, Limit: replayPage})
		if err != nil {
			return st, rp.stop(ctx, &st, save, fmt.Errorf("read archive: %w", err))
		}
		if len(page) == 0 {
			if err := save(ReplayDone, ""); err != nil {
				return st, errorf("replay %s: save progress: %w", id, err)
			}
			return st, nil
		}
		for _, a := range page {
			st.Scanned++
			if pattern != nil && !pattern.Match(&a.Event) {
				st.AfterSeq = a.Seq
				continue
			}
			if err := pace.wait(ctx); err != nil {
				return st, rp.stop(ctx, &st, save, err)
			}
			ev := a.Event.Clone()
			ev.SetExtension(ExtReplayed, req.ID)
			ev.SetExtension(ExtTargetSubscription, nil)
			if req.Subscription != "" {
				ev.SetExtension(ExtTargetSubscription, req.Subscription)
			}
			if err := rp.bus.Publish(ctx, req.Target, &ev); err != nil {
				return st, rp.stop(ctx, &st, save, fmt.Errorf("publish event %s to %q: %w", ev.ID(), req.Target, err))
			}
			st.AfterSeq = a.Seq
			st.Published++
			if err := save(ReplayRunning, ""); err != nil {
				return st, errorf("replay %s: save progress: %w", id, err)
			}
		}
	}
}

// stop saves an interrupted or failed replay and returns why it stopped.
func (rp *Replayer) stop(ctx context.Context, st *ReplayState, save func(string, string) error, cause error) error {
	status := ReplayFailed
	if ctx.Err() != nil {
		status, cause = ReplayInterrupted, ctx.Err()
	}
	err := errorf("replay %s %s after %d events: %w", st.ID, status, st.Published, cause)
	return errors.Join(err, save(status, cause.Error()))
}
