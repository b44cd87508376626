package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// TestEventStore checks the sourcing.Store guarantees (see the sourcing
// package documentation). newStore returns an empty store for each subtest.
//
// The guarantees, one subtest each: versions start at 1 and have no gaps;
// every expected-version rule; a conflict carries the actual version; reads
// from a version and from a global position; every CloudEvent attribute
// round-trips; dedupe by event id within a stream (and a retry of a whole
// append succeeds); an invalid event or stream name records nothing; of
// concurrent appenders to one stream exactly one wins each version; global
// positions are gap-free and in commit order, so a reader tailing the log
// while others append sees every event exactly once.
func TestEventStore(t *testing.T, newStore func(t *testing.T) sourcing.Store) {
	tests := cases[sourcing.Store]{
		{"VersionsStartAtOneWithoutGaps", testVersions},
		{"ExpectedVersionRules", testExpectedRules},
		{"ConflictCarriesActualVersion", testConflictError},
		{"ReadStreamFromVersion", testReadStreamFrom},
		{"ReadAllFromPositionAcrossStreams", testReadAllFrom},
		{"AllAttributesAndDataRoundTrip", testEventRoundTrip},
		{"DuplicateEventIDsAreSkippedWithinAStream", testDedupe},
		{"RetriedAppendSucceedsWhateverItExpected", testRetriedAppend},
		{"SameIDInAnotherStreamIsRecorded", testDedupeScope},
		{"EmptyAppendOnlyChecksExpected", testEmptyAppend},
		{"InvalidInputRecordsNothing", testInvalidAppend},
		{"ReadersStopEarlyAndHonourCancellation", testReadStop},
		{"ConcurrentAppendersExactlyOneWinsEachVersion", testConcurrentOneStream},
		{"GlobalOrderIsGapFreeAndInCommitOrder", testGlobalOrder},
	}
	tests.run(t, newStore)
}

func testVersions(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	res, err := s.Append(ctx, "order-1", sourcing.NoStream, events(3, "placed")...)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), res.Version)
	assert.Equal(t, 3, res.Appended)
	assert.Equal(t, uint64(1), res.FirstPosition)
	assert.Equal(t, uint64(3), res.LastPosition)
	res, err = s.Append(ctx, "order-1", sourcing.Exactly(3), events(2, "paid")...)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), res.Version)
	assert.Equal(t, uint64(4), res.FirstPosition)

	recs, err := sourcing.Collect(s.ReadStream(ctx, "order-1", 1))
	require.NoError(t, err)
	require.Len(t, recs, 5)
	for i, r := range recs {
		assert.Equal(t, uint64(i+1), r.Version)
		assert.Equal(t, uint64(i+1), r.Position)
		assert.Equal(t, "order-1", r.Stream)
		assert.False(t, r.Recorded.IsZero(), "recorded time is set")
	}
	v, err := s.StreamVersion(ctx, "order-1")
	require.NoError(t, err)
	assert.Equal(t, uint64(5), v)
	v, err = s.StreamVersion(ctx, "missing")
	require.NoError(t, err)
	assert.Zero(t, v)
	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), head)
}

func testExpectedRules(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	cases := []struct {
		name     string
		existing int // events in the stream before the append
		expected sourcing.Expected
		ok       bool
	}{
		{"AnyOnMissing", 0, sourcing.Any, true},
		{"AnyOnExisting", 2, sourcing.Any, true},
		{"NoStreamOnMissing", 0, sourcing.NoStream, true},
		{"NoStreamOnExisting", 2, sourcing.NoStream, false},
		{"StreamExistsOnMissing", 0, sourcing.StreamExists, false},
		{"StreamExistsOnExisting", 2, sourcing.StreamExists, true},
		{"ExactZeroOnMissing", 0, sourcing.Exactly(0), true},
		{"ExactMatch", 2, sourcing.Exactly(2), true},
		{"ExactBehind", 2, sourcing.Exactly(1), false},
		{"ExactAhead", 2, sourcing.Exactly(7), false},
		{"ExactOnMissing", 0, sourcing.Exactly(1), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := "rules-" + tc.name
			if tc.existing > 0 {
				_, err := s.Append(ctx, stream, sourcing.NoStream, events(tc.existing, "e")...)
				require.NoError(t, err)
			}
			_, err := s.Append(ctx, stream, tc.expected, NewTestEvent("x", nil))
			after, verr := s.StreamVersion(ctx, stream)
			require.NoError(t, verr)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, uint64(tc.existing+1), after)
			} else {
				require.ErrorIs(t, err, sourcing.ErrConflict)
				assert.Equal(t, uint64(tc.existing), after, "a refused append writes nothing")
			}
		})
	}
}

func testConflictError(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	_, err := s.Append(ctx, "acct", sourcing.NoStream, events(4, "deposit")...)
	require.NoError(t, err)
	_, err = s.Append(ctx, "acct", sourcing.Exactly(2), NewTestEvent("withdraw", nil))
	var ce *sourcing.ConflictError
	require.True(t, errors.As(err, &ce), "error %v is a *ConflictError", err)
	assert.Equal(t, uint64(4), ce.Actual)
	assert.Equal(t, "acct", ce.Stream)
	assert.Equal(t, sourcing.Exactly(2), ce.Expected)
	assert.Contains(t, err.Error(), "actual version 4")

	_, err = s.Append(ctx, "nobody", sourcing.StreamExists, NewTestEvent("x", nil))
	require.True(t, errors.As(err, &ce))
	assert.Zero(t, ce.Actual)
}

func testReadStreamFrom(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	_, err := s.Append(ctx, "s", sourcing.Any, events(10, "e")...)
	require.NoError(t, err)
	_, err = s.Append(ctx, "other", sourcing.Any, events(3, "o")...)
	require.NoError(t, err)
	for _, tc := range []struct {
		from uint64
		want []uint64
	}{{0, seq(1, 10)}, {1, seq(1, 10)}, {7, seq(7, 10)}, {10, []uint64{10}}, {11, nil}, {100, nil}} {
		recs, err := sourcing.Collect(s.ReadStream(ctx, "s", tc.from))
		require.NoError(t, err)
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Version)
			assert.Equal(t, "s", r.Stream)
		}
		assert.Equal(t, tc.want, got, "from %d", tc.from)
	}
	recs, err := sourcing.Collect(s.ReadStream(ctx, "missing", 1))
	require.NoError(t, err)
	assert.Empty(t, recs)
}

func seq(a, b uint64) []uint64 {
	var out []uint64
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

func testReadAllFrom(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	streams := []string{"a", "b", "a", "c", "b", "a"}
	for _, st := range streams {
		_, err := s.Append(ctx, st, sourcing.Any, NewTestEvent("e", map[string]string{"stream": st}))
		require.NoError(t, err)
	}
	recs, err := sourcing.Collect(s.ReadAll(ctx, 0))
	require.NoError(t, err)
	require.Len(t, recs, len(streams))
	versions := map[string]uint64{}
	for i, r := range recs {
		assert.Equal(t, uint64(i+1), r.Position)
		assert.Equal(t, streams[i], r.Stream)
		versions[r.Stream]++
		assert.Equal(t, versions[r.Stream], r.Version, "position %d", r.Position)
	}
	recs, err = sourcing.Collect(s.ReadAll(ctx, 4))
	require.NoError(t, err)
	require.Len(t, recs, 3)
	assert.Equal(t, uint64(4), recs[0].Position)
	recs, err = sourcing.Collect(s.ReadAll(ctx, 7))
	require.NoError(t, err)
	assert.Empty(t, recs)
}

func testEventRoundTrip(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	e := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com/orders?region=eu")
	e.SetSubject("order/42")
	e.SetDataSchema("https://schemas.example.com/order.json")
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&e, map[string]any{"total": 12.5, "items": []string{"a", "b"}}))
	e.SetExtension("tenant", "acme")
	e.SetExtension("priority", 7)
	e.SetExtension("urgent", true)
	crossbus.SetPartitionKey(&e, "order-42")

	bin := crossbus.NewEvent("com.example.blob", "/blobs")
	bin.SetDataContentType("image/png")
	require.NoError(t, crossbus.SetData(&bin, []byte{0, 1, 2, 0xff, 0xfe}))

	empty := crossbus.NewEvent("com.example.nodata", "urn:example:empty")

	_, err := s.Append(ctx, "rt", sourcing.NoStream, &e, &bin, &empty)
	require.NoError(t, err)
	recs, err := sourcing.Collect(s.ReadStream(ctx, "rt", 1))
	require.NoError(t, err)
	require.Len(t, recs, 3)

	got := recs[0].Event
	require.NoError(t, crossbus.Validate(got))
	assert.Equal(t, e.ID(), got.ID())
	assert.Equal(t, e.Source(), got.Source())
	assert.Equal(t, e.Type(), got.Type())
	assert.Equal(t, e.SpecVersion(), got.SpecVersion())
	assert.Equal(t, "order/42", got.Subject())
	assert.Equal(t, e.DataSchema(), got.DataSchema())
	assert.True(t, e.Time().Equal(got.Time()), "time %v != %v", e.Time(), got.Time())
	assert.Equal(t, "application/json", got.DataContentType())
	assert.JSONEq(t, string(e.Data()), string(got.Data()))
	assert.Equal(t, "acme", crossbus.ExtensionString(got, "tenant"))
	assert.Equal(t, "7", crossbus.ExtensionString(got, "priority"))
	assert.Equal(t, "true", crossbus.ExtensionString(got, "urgent"))
	assert.Equal(t, "order-42", crossbus.PartitionKey(got))

	gotBin := recs[1].Event
	assert.Equal(t, "image/png", gotBin.DataContentType())
	assert.Equal(t, []byte{0, 1, 2, 0xff, 0xfe}, gotBin.Data())

	gotEmpty := recs[2].Event
	assert.Empty(t, gotEmpty.Data())
	assert.Equal(t, "urn:example:empty", gotEmpty.Source())

	// The store keeps its own copy: changing what was appended or read does
	// not change what is stored.
	e.SetType("changed")
	got.SetType("changed-too")
	again, err := sourcing.Collect(s.ReadStream(ctx, "rt", 1))
	require.NoError(t, err)
	assert.Equal(t, "com.example.order.placed", again[0].Event.Type())
}

func testDedupe(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	first := events(3, "e")
	_, err := s.Append(ctx, "d", sourcing.NoStream, first...)
	require.NoError(t, err)
	fresh := NewTestEvent("e", nil)
	res, err := s.Append(ctx, "d", sourcing.Exactly(3), first[1], fresh, first[2])
	require.NoError(t, err)
	assert.Equal(t, 1, res.Appended)
	assert.Equal(t, 2, res.Duplicates)
	assert.Equal(t, uint64(4), res.Version)
	twice := NewTestEvent("e", nil)
	res, err = s.Append(ctx, "d", sourcing.Exactly(4), twice, twice)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Appended, "an id repeated within one call is recorded once")
	assert.Equal(t, 1, res.Duplicates)
	recs, err := sourcing.Collect(s.ReadStream(ctx, "d", 1))
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, r := range recs {
		assert.False(t, ids[r.Event.ID()], "id %s recorded twice", r.Event.ID())
		ids[r.Event.ID()] = true
	}
	assert.Len(t, recs, 5)
}

func testRetriedAppend(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	batch := events(2, "e")
	_, err := s.Append(ctx, "r", sourcing.NoStream, batch...)
	require.NoError(t, err)
	_, err = s.Append(ctx, "r", sourcing.Any, NewTestEvent("later", nil))
	require.NoError(t, err)
	// The first append's outcome was "lost"; the caller retries it.
	res, err := s.Append(ctx, "r", sourcing.NoStream, batch...)
	require.NoError(t, err, "a retry of an append that was recorded succeeds")
	assert.Equal(t, 0, res.Appended)
	assert.Equal(t, 2, res.Duplicates)
	assert.Equal(t, uint64(3), res.Version)
	v, err := s.StreamVersion(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)
}

func testDedupeScope(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	e := NewTestEvent("e", nil)
	_, err := s.Append(ctx, "one", sourcing.Any, e)
	require.NoError(t, err)
	res, err := s.Append(ctx, "two", sourcing.Any, e)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Appended)
	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), head)
}

func testEmptyAppend(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	res, err := s.Append(ctx, "e", sourcing.NoStream)
	require.NoError(t, err)
	assert.Zero(t, res.Version)
	_, err = s.Append(ctx, "e", sourcing.StreamExists)
	require.ErrorIs(t, err, sourcing.ErrConflict)
	_, err = s.Append(ctx, "e", sourcing.Any, NewTestEvent("x", nil))
	require.NoError(t, err)
	res, err = s.Append(ctx, "e", sourcing.Exactly(1))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.Version)
	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), head)
}

func testInvalidAppend(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	bad := crossbus.NewEvent("", "/src") // no type
	_, err := s.Append(ctx, "i", sourcing.Any, NewTestEvent("ok", nil), &bad, NewTestEvent("ok", nil))
	require.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "type")
	_, err = s.Append(ctx, "i", sourcing.Any, NewTestEvent("ok", nil), nil)
	require.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	_, err = s.Append(ctx, "", sourcing.Any, NewTestEvent("ok", nil))
	require.ErrorIs(t, err, sourcing.ErrInvalidStream)
	long := make([]byte, sourcing.MaxStreamName+1)
	for i := range long {
		long[i] = 'x'
	}
	_, err = s.Append(ctx, string(long), sourcing.Any, NewTestEvent("ok", nil))
	require.ErrorIs(t, err, sourcing.ErrInvalidStream)
	assert.Contains(t, err.Error(), fmt.Sprint(sourcing.MaxStreamName))
	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Zero(t, head, "nothing was recorded")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Append(cctx, "i", sourcing.Any, NewTestEvent("ok", nil))
	require.ErrorIs(t, err, context.Canceled)
}

func testReadStop(t *testing.T, s sourcing.Store) {
	ctx := context.Background()
	_, err := s.Append(ctx, "s", sourcing.Any, events(1000, "e")...)
	require.NoError(t, err)
	n := 0
	for _, err := range s.ReadAll(ctx, 1) {
		require.NoError(t, err)
		n++
		if n == 10 {
			break
		}
	}
	assert.Equal(t, 10, n)
	n = 0
	for _, err := range s.ReadStream(ctx, "s", 1) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	assert.Equal(t, 3, n)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	var last error
	count := 0
	for _, err := range s.ReadAll(cctx, 1) {
		count++
		last = err
	}
	require.ErrorIs(t, last, context.Canceled)
	assert.Less(t, count, 1000, "a cancelled read ends early")
}
