package sourcing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
)

// Relay publishes an Outbox's messages to a bus and marks them sent: the
// second half of the transactional outbox. Delivery is at least once: a
// crash between publishing and marking publishes the message again after
// restart, so consumers deduplicate (crossbus.WithIdempotency; the event id
// is kept).
//
// Order: messages are published in outbox order, which is commit order, and
// a message is marked sent only when every earlier message of its stream is.
// When the bus refuses an event, the later events of its stream stay pending
// (even those the bus accepted in the same batch, since publishing is atomic
// per event) and are published again after it, so the last publication of
// each event of a stream is in stream order. The relay stamps each event that
// has none with its stream as partition key and its stream version (for
// appended events) as the sequence extension (20 digits, zero-padded), so an
// ordered consumer can recognise an event that arrived ahead of its turn.
//
// Run one Relay per outbox: two would publish the same messages twice. On
// several replicas, give each replica's Relay the same Leader store: only
// the replica that holds the lease relays, and another takes over within
// about the lease's TTL when it dies (see patterns/leader).
//
// With a Leader, the relay checks its lease's context before reading and
// before publishing each batch, so a replica that lost its lease publishes
// at most the batch it had already started. MarkSent is called with a
// context that carries the lease (leader.WithLease): an outbox that fences
// writes (stores/postgres) refuses the marks of a replica whose term ended,
// and those messages are published again by the new leader. Either way the
// duplicates are at-least-once deliveries of events with the same id,
// which idempotent consumers skip.
type Relay struct {
	Outbox Outbox
	Bus    crossbus.Publisher
	// BatchSize bounds the messages read and published at once (default 100).
	BatchSize int
	// PollInterval is how often Run looks for messages written by other
	// processes (default 250ms). Writes in this process wake it at once when
	// the outbox implements Notifier.
	PollInterval time.Duration
	// RetryDelay is how long Run waits after a failed publish (default 1s,
	// doubling up to 30s while failures last).
	RetryDelay time.Duration
	// Logger receives publish failures (default: discarded).
	Logger *slog.Logger

	// Leader, when set, makes Run relay only while this replica holds the
	// lease LeaderName in it (see the type's documentation). Flush is not
	// affected.
	Leader leader.Store
	// LeaderName names the lease (default "crossbus-outbox-relay"); relays
	// of distinct outboxes sharing a leader store need distinct names.
	LeaderName string
	// LeaderOptions configure the election (TTL, holder name, logger).
	LeaderOptions leader.Options
}

func (r *Relay) batchSize() int {
	if r.BatchSize > 0 {
		return r.BatchSize
	}
	return 100
}

// Flush publishes every message pending now, batch by batch, and returns how
// many it published. It stops at the first batch with a failure and returns
// the error; messages not published stay pending.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	if r.Outbox == nil || r.Bus == nil {
		return 0, fmt.Errorf("sourcing: Relay needs an Outbox and a Bus: %w", crossbus.ErrInvalidOption)
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err // with a leader: the lease may be lost
		}
		msgs, err := r.Outbox.PendingOutbox(ctx, r.batchSize())
		if err != nil {
			return total, fmt.Errorf("sourcing: relay: read outbox: %w", err)
		}
		if len(msgs) == 0 {
			return total, nil
		}
		n, err := r.publish(ctx, msgs)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// publish sends one batch: consecutive messages of a topic in one Publish
// call, then marks what was published.
func (r *Relay) publish(ctx context.Context, msgs []OutboxMessage) (int, error) {
	blocked := map[string]bool{} // streams with an unpublished earlier message
	var sent []uint64
	var errs []error
	for start := 0; start < len(msgs); {
		end := start + 1
		for end < len(msgs) && msgs[end].Topic == msgs[start].Topic {
			end++
		}
		var group []OutboxMessage
		var events []*crossbus.Event
		for _, m := range msgs[start:end] {
			if m.Stream != "" && blocked[m.Stream] {
				continue
			}
			stamp(&m)
			group = append(group, m)
			events = append(events, m.Event)
		}
		start = end
		if len(events) == 0 {
			continue
		}
		if cerr := ctx.Err(); cerr != nil {
			// Stopped, or (with a leader) the lease can no longer be
			// proven held: publish nothing more; what is unmarked stays
			// pending for the next relay.
			errs = append(errs, fmt.Errorf("sourcing: relay stopped before publishing to %q: %w", group[0].Topic, cerr))
			break
		}
		err := r.Bus.Publish(ctx, group[0].Topic, events...)
		failed := map[int]bool{}
		if err != nil {
			var pe *crossbus.PublishError
			if errors.As(err, &pe) {
				for _, i := range pe.FailedIndexes() {
					failed[i] = true
				}
			} else {
				for i := range group {
					failed[i] = true
				}
			}
			errs = append(errs, fmt.Errorf("sourcing: relay to topic %q: %w", group[0].Topic, err))
		}
		for i, m := range group {
			if failed[i] || m.Stream != "" && blocked[m.Stream] {
				// Not marked: a refused event, or one the bus took ahead of
				// a refused predecessor; both go out again after it.
				if m.Stream != "" {
					blocked[m.Stream] = true
				}
				continue
			}
			sent = append(sent, m.ID)
		}
	}
	if len(sent) > 0 {
		// Marking uses a context that survives cancellation: the events are
		// out, and marking them now avoids publishing them twice.
		if err := r.Outbox.MarkSent(context.WithoutCancel(ctx), sent...); err != nil {
			errs = append(errs, fmt.Errorf("sourcing: relay: mark %d message(s) sent: %w", len(sent), err))
		}
	}
	return len(sent), errors.Join(errs...)
}

// stamp sets the partition key to the stream and the sequence extension to
// the stream version, where the event has none of its own.
func stamp(m *OutboxMessage) {
	if m.Stream != "" && crossbus.PartitionKey(m.Event) == "" {
		crossbus.SetPartitionKey(m.Event, m.Stream)
	}
	if m.Version > 0 && crossbus.ExtensionString(m.Event, crossbus.ExtSequence) == "" {
		m.Event.SetExtension(crossbus.ExtSequence, fmt.Sprintf("%020d", m.Version))
	}
}

// Run relays until ctx ends, then returns nil. It flushes at start (messages
// left by a crash are published first), whenever the outbox signals a write,
// and every PollInterval; after a failure it waits RetryDelay. With a
// Leader it relays only while it holds the lease, and campaigns otherwise.
func (r *Relay) Run(ctx context.Context) error {
	if r.Outbox == nil || r.Bus == nil {
		return fmt.Errorf("sourcing: Relay needs an Outbox and a Bus: %w", crossbus.ErrInvalidOption)
	}
	if r.Leader != nil {
		name := r.LeaderName
		if name == "" {
			name = "crossbus-outbox-relay"
		}
		return leader.Run(ctx, r.Leader, name, r.LeaderOptions, func(lctx context.Context, _ leader.Lease) error {
			return r.run(lctx) // returns when lctx ends: the lease is lost or ctx ended
		})
	}
	return r.run(ctx)
}

// run is Run's loop; ctx carries the lease when there is a leader.
func (r *Relay) run(ctx context.Context) error {
	poll := r.PollInterval
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	retry := r.RetryDelay
	if retry <= 0 {
		retry = time.Second
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	notifier, _ := r.Outbox.(Notifier)
	delay := retry
	for {
		var changed <-chan struct{}
		if notifier != nil {
			changed = notifier.Changed() // before Flush, so no write is missed
		}
		wait := poll
		if _, err := r.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("sourcing: outbox relay failed; will retry", "error", err, "retryIn", delay)
			wait = delay
			delay = min(2*delay, 30*time.Second)
			changed = nil // do not spin on writes while the bus fails
		} else {
			delay = retry
		}
		t := time.NewTimer(wait)
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
