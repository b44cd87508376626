package sourcing

import (
	"errors"
	"fmt"
	"strconv"
)

// Expected is the version an Append expects the stream to be at: Any,
// NoStream, StreamExists or Exactly(n). It is how writers detect that
// someone else changed the stream since they read it (optimistic
// concurrency).
type Expected struct {
	kind    expectKind
	version uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectExact
)

var (
	// Any appends whatever the stream's version.
	Any = Expected{kind: expectAny}
	// NoStream appends only if the stream has no events yet.
	NoStream = Expected{kind: expectNoStream}
	// StreamExists appends only if the stream has at least one event.
	StreamExists = Expected{kind: expectExists}
)

// Exactly appends only if the stream is at version v (its last event has
// version v; 0 means the stream is empty, like NoStream).
func Exactly(v uint64) Expected {
	if v == 0 {
		return NoStream
	}
	return Expected{kind: expectExact, version: v}
}

// Allows reports whether a stream at version current (0 = no events)
// satisfies e. Store implementations use it.
func (e Expected) Allows(current uint64) bool {
	switch e.kind {
	case expectNoStream:
		return current == 0
	case expectExists:
		return current > 0
	case expectExact:
		return current == e.version
	}
	return true
}

// Version returns the exact version e expects and whether e is exact
// (NoStream counts as exactly 0).
func (e Expected) Version() (uint64, bool) {
	switch e.kind {
	case expectExact:
		return e.version, true
	case expectNoStream:
		return 0, true
	}
	return 0, false
}

func (e Expected) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectExists:
		return "stream exists"
	case expectExact:
		return "version " + strconv.FormatUint(e.version, 10)
	}
	return "any version"
}

// ErrConflict is matched (errors.Is) by every *ConflictError.
var ErrConflict = errors.New("sourcing: concurrency conflict")

// ErrInvalidStream is returned for an empty or over-long stream name.
var ErrInvalidStream = errors.New("sourcing: invalid stream name")

// ConflictError reports an Append whose expected version the stream did not
// have. Get it with errors.As to read the stream's actual version.
type ConflictError struct {
	Stream   string
	Expected Expected
	Actual   uint64 // the stream's version when the append was refused (0 = no events)
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("sourcing: stream %q: expected %s, actual version %d: %v", e.Stream, e.Expected, e.Actual, ErrConflict)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
