package ops

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/publishhook"
)

// ArchivedEvent is one published event as the archive keeps it.
type ArchivedEvent struct {
	// Seq orders the archive: it grows with every event appended (gaps
	// are allowed). The store assigns it.
	Seq   int64
	Topic string
	// Time is when the event was published (archived).
	Time  time.Time
	Event crossbus.Event
}

// ArchiveQuery selects archived events of one topic, in Seq order.
type ArchiveQuery struct {
	Topic string
	// From (inclusive) and To (exclusive) bound the publish time.
	From, To time.Time
	// AfterSeq skips events up to and including this Seq.
	AfterSeq int64
	// Limit bounds the events returned (the store may return fewer).
	Limit int
}

// ArchiveStore keeps archived events and the progress of replays.
// stores/sqlite and stores/postgres implement it (DB.Archive).
type ArchiveStore interface {
	// Append adds events, assigning each a Seq greater than every Seq
	// before it.
	Append(ctx context.Context, events []ArchivedEvent) error
	// Scan returns the events the query selects, in Seq order.
	Scan(ctx context.Context, q ArchiveQuery) ([]ArchivedEvent, error)
	// Count returns how many events the query selects (ignoring Limit).
	Count(ctx context.Context, q ArchiveQuery) (int64, error)
	// Trim deletes events published before olderThan (if not zero) and
	// then the oldest events until the archive holds at most maxBytes of
	// encoded events (if above 0). It returns how many it deleted.
	Trim(ctx context.Context, olderThan time.Time, maxBytes int64) (int64, error)
	// Stats reports the archive's size per topic.
	Stats(ctx context.Context) ([]TopicStats, error)
	// SaveReplay creates or updates a replay's state.
	SaveReplay(ctx context.Context, r ReplayState) error
	// LoadReplay returns a replay's state; an error wrapping ErrNotFound
	// when there is none.
	LoadReplay(ctx context.Context, id string) (ReplayState, error)
	// Replays lists the replays, newest first.
	Replays(ctx context.Context) ([]ReplayState, error)
}

// TopicStats is the archive's content for one topic.
type TopicStats struct {
	Topic  string    `json:"topic"`
	Events int64     `json:"events"`
	Bytes  int64     `json:"bytes"`
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"`
}

// ArchiveOptions choose what an Archive keeps and for how long.
type ArchiveOptions struct {
	// Topics are the topics archived (at least one).
	Topics []string
	// MaxAge deletes events older than this (0: kept by age).
	MaxAge time.Duration
	// MaxBytes keeps the archive's encoded events within this many bytes,
	// deleting the oldest (0: no limit).
	MaxBytes int64
	// TrimEvery is how often retention runs, in the background after an
	// append (default 1m).
	TrimEvery time.Duration
	// Logger receives archive failures (default: discarded).
	Logger *slog.Logger
}

// Archive keeps every event published to chosen topics in a store. Its
// BusOption installs it on a bus:
//
//	a, err := ops.NewArchive(db.Archive(), ops.ArchiveOptions{Topics: []string{"orders"}, MaxAge: 30 * 24 * time.Hour})
//	bus, err := crossbus.Open(ctx, url, a.BusOption())
//
// Events are archived after the provider accepted them, in the publishing
// goroutine (Publish waits for the store). An archive failure does not fail
// the publish: it is logged and counted (Failures). Events that a replay or
// a redrive re-published (carrying ExtReplayed or ExtRedriven) are not
// archived again: the archive holds what producers published.
type Archive struct {
	store    ArchiveStore
	opts     ArchiveOptions
	topics   map[string]bool
	log      *slog.Logger
	failures atomic.Int64
	trimMu   sync.Mutex
	lastTrim time.Time
	trimming atomic.Bool
	wg       sync.WaitGroup
}

// NewArchive returns an archive of opts.Topics in store.
func NewArchive(store ArchiveStore, opts ArchiveOptions) (*Archive, error) {
	if store == nil {
		return nil, errorf("%w: NewArchive needs a store", crossbus.ErrInvalidOption)
	}
	if len(opts.Topics) == 0 {
		return nil, errorf("%w: NewArchive needs at least one topic", crossbus.ErrInvalidOption)
	}
	if opts.MaxAge < 0 || opts.MaxBytes < 0 || opts.TrimEvery < 0 {
		return nil, errorf("%w: archive MaxAge, MaxBytes and TrimEvery must not be negative", crossbus.ErrInvalidOption)
	}
	a := &Archive{store: store, opts: opts, topics: map[string]bool{}, log: opts.Logger}
	for _, t := range opts.Topics {
		if err := crossbus.ValidateName(t); err != nil {
			return nil, errorf("archive topic: %w", err)
		}
		a.topics[t] = true
	}
	if a.opts.TrimEvery == 0 {
		a.opts.TrimEvery = time.Minute
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.lastTrim = time.Now()
	return a, nil
}

// Store returns the archive's store.
func (a *Archive) Store() ArchiveStore { return a.store }

// Topics returns the archived topics, sorted.
func (a *Archive) Topics() []string {
	out := make([]string, 0, len(a.topics))
	for t := range a.topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Failures is how many events could not be archived.
func (a *Archive) Failures() int64 { return a.failures.Load() }

// BusOption installs the archive on a bus: it sees every event the bus
// publishes, after the provider accepted it.
func (a *Archive) BusOption() crossbus.BusOption {
	return func(b *crossbus.Bus) error { return publishhook.Install(b, a.archive) }
}

func (a *Archive) archive(ctx context.Context, topic string, events []*crossbus.Event) {
	if !a.topics[topic] {
		return
	}
	now := time.Now().UTC()
	recs := make([]ArchivedEvent, 0, len(events))
	for _, e := range events {
		ext := e.Extensions()
		if _, replay := ext[ExtReplayed]; replay {
			continue
		}
		if _, redrive := ext[ExtRedriven]; redrive {
			continue
		}
		recs = append(recs, ArchivedEvent{Topic: topic, Time: now, Event: e.Clone()})
	}
	if len(recs) == 0 {
		return
	}
	if err := a.store.Append(context.WithoutCancel(ctx), recs); err != nil {
		a.failures.Add(int64(len(recs)))
		a.log.Error("crossbus/ops: archive failed; the events were published but are not archived",
			"topic", topic, "events", len(recs), "error", err)
	}
	a.maybeTrim()
}

// maybeTrim starts retention in the background once TrimEvery has passed.
func (a *Archive) maybeTrim() {
	if a.opts.MaxAge == 0 && a.opts.MaxBytes == 0 {
		return
	}
	a.trimMu.Lock()
	due := time.Since(a.lastTrim) >= a.opts.TrimEvery
	if due {
		a.lastTrim = time.Now()
	}
	a.trimMu.Unlock()
	if !due || !a.trimming.CompareAndSwap(false, true) {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.trimming.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := a.Trim(ctx); err != nil {
			a.log.Error("crossbus/ops: archive retention failed", "error", err)
		}
	}()
}

// Trim applies retention now and returns how many events it deleted.
func (a *Archive) Trim(ctx context.Context) (int64, error) {
	var older time.Time
	if a.opts.MaxAge > 0 {
		older = time.Now().Add(-a.opts.MaxAge)
	}
	return a.store.Trim(ctx, older, a.opts.MaxBytes)
}

// Wait waits for background retention to finish (for tests and shutdown).
func (a *Archive) Wait() { a.wg.Wait() }
