package sourcing

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/crossbus/crossbus"
)

// MaxStreamName is the longest stream name, in bytes.
const MaxStreamName = 1024

// Record is an event as the store recorded it.
type Record struct {
	Stream   string
	Version  uint64    // position in the stream, 1 for its first event
	Position uint64    // position in the whole store, 1 for the first event ever
	Recorded time.Time // when the append committed
	Event    *crossbus.Event
}

// AppendResult says what an Append did.
type AppendResult struct {
	// Version is the stream's version after the append.
	Version uint64
	// FirstPosition and LastPosition are the global positions of the events
	// written (both 0 when none was).
	FirstPosition, LastPosition uint64
	// Appended counts the events written; Duplicates those skipped because
	// their id was already recorded in the stream (or earlier in the call).
	Appended, Duplicates int
}

// Store is an append-only event store. Implementations keep the guarantees
// listed in the package documentation; stores/storetest.TestEventStore
// checks them. A Store is safe for concurrent use.
type Store interface {
	// Append records events at the end of stream if the stream's version
	// satisfies expected, atomically. Events whose id the stream already
	// holds are skipped (see the package documentation). It returns a
	// *ConflictError (matching ErrConflict) when expected does not hold, and
	// an error matching crossbus.ErrInvalidEvent for an invalid event. An
	// Append of no events only checks expected.
	Append(ctx context.Context, stream string, expected Expected, events ...*crossbus.Event) (AppendResult, error)

	// ReadStream yields the events of stream from version from (1 = the
	// start; 0 counts as 1) in version order. A missing stream yields
	// nothing. An error ends the sequence as its last pair.
	ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[Record, error]

	// ReadAll yields every event from global position from (1 = the start;
	// 0 counts as 1) in position order, up to the last committed event when
	// the read began or later.
	ReadAll(ctx context.Context, from uint64) iter.Seq2[Record, error]

	// StreamVersion returns the stream's version (0 when it has no events).
	StreamVersion(ctx context.Context, stream string) (uint64, error)

	// Head returns the position of the last recorded event (0 when none).
	Head(ctx context.Context) (uint64, error)
}

// Notifier is implemented by stores that can tell their users in this
// process that something was written. Changed returns a channel that is
// closed at the next write (appends, outbox messages); callers get a new
// channel after each wake-up. Writers in other processes are not seen:
// callers also poll.
type Notifier interface {
	Changed() <-chan struct{}
}

// ValidateAppend checks an Append's arguments: the stream name and that
// every event is a valid CloudEvent. Store implementations call it first.
func ValidateAppend(stream string, events []*crossbus.Event) error {
	if stream == "" {
		return fmt.Errorf("%w: stream name is empty", ErrInvalidStream)
	}
	if len(stream) > MaxStreamName {
		return fmt.Errorf("%w: stream name is %d bytes, over the limit of %d", ErrInvalidStream, len(stream), MaxStreamName)
	}
	for i, e := range events {
		if e == nil {
			return fmt.Errorf("sourcing: append to %q: event %d is nil: %w", stream, i, crossbus.ErrInvalidEvent)
		}
		if err := crossbus.Validate(e); err != nil {
			return fmt.Errorf("sourcing: append to %q: event %d: %w", stream, i, err)
		}
	}
	return nil
}

// Collect reads a whole sequence into a slice, stopping at the first error.
func Collect(seq iter.Seq2[Record, error]) ([]Record, error) {
	var out []Record
	for r, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}
