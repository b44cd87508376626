package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// OutboxStore is an event store whose appends enqueue outbox messages.
type OutboxStore interface {
	sourcing.Store
	sourcing.Outbox
}

// outboxRoute is the route of the outbox suite: events of type "internal"
// stay in the store; the others go to "topic-" and the stream's first letter.
func outboxRoute(stream string, e *crossbus.Event) string {
	if e.Type() == "internal" {
		return ""
	}
	return "topic-" + stream[:1]
}

// TestOutbox checks the store side of the transactional outbox and the
// Relay on top of it. newStore returns an empty store that enqueues each
// appended event with the given route.
func TestOutbox(t *testing.T, newStore func(t *testing.T, route sourcing.OutboxRoute) OutboxStore) {
	tests := cases[OutboxStore]{
		{"AppendEnqueuesInCommitOrder", outboxAppendEnqueuesInCommitOrder},
		{"UnroutedDuplicateAndRefusedEventsAreNotEnqueued", outboxUnroutedDuplicateAndRefusedEventsAreNotEnqueued},
		{"MarkSentRemovesFromPendingAndLimitApplies", outboxMarkSentRemovesFromPendingAndLimitApplies},
		{"RelayPublishesInOrderAndMarksSent", outboxRelayPublishesInOrderAndMarksSent},
		{"RelayHoldsBackAStreamAfterAFailure", outboxRelayHoldsBackAStreamAfterAFailure},
	}
	tests.run(t, func(t *testing.T) OutboxStore { return newStore(t, outboxRoute) })
}

func outboxAppendEnqueuesInCommitOrder(t *testing.T, s OutboxStore) {
	ctx := context.Background()
	var appended []*crossbus.Event
	for _, st := range []string{"a1", "b1", "a1", "a2"} {
		e := NewTestEvent("e", map[string]string{"stream": st})
		appended = append(appended, e)
		_, err := s.Append(ctx, st, sourcing.Any, e)
		require.NoError(t, err)
	}
	msgs, err := s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Len(t, msgs, 4)
	wantStream := []string{"a1", "b1", "a1", "a2"}
	wantVersion := []uint64{1, 1, 2, 1}
	for i, m := range msgs {
		assert.Equal(t, wantStream[i], m.Stream)
		assert.Equal(t, "topic-"+wantStream[i][:1], m.Topic)
		assert.Equal(t, wantVersion[i], m.Version)
		assert.Equal(t, appended[i].ID(), m.Event.ID())
		assert.JSONEq(t, string(appended[i].Data()), string(m.Event.Data()))
		assert.False(t, m.Enqueued.IsZero())
		if i > 0 {
			assert.Greater(t, m.ID, msgs[i-1].ID, "ids rise in commit order")
		}
	}
}

func outboxUnroutedDuplicateAndRefusedEventsAreNotEnqueued(t *testing.T, s OutboxStore) {
	ctx := context.Background()
	e := NewTestEvent("e", nil)
	_, err := s.Append(ctx, "a", sourcing.NoStream, e, NewTestEvent("internal", nil))
	require.NoError(t, err)
	_, err = s.Append(ctx, "a", sourcing.Any, e) // duplicate
	require.NoError(t, err)
	_, err = s.Append(ctx, "a", sourcing.NoStream, NewTestEvent("e", nil)) // conflict
	require.ErrorIs(t, err, sourcing.ErrConflict)
	msgs, err := s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, e.ID(), msgs[0].Event.ID())
}

func outboxMarkSentRemovesFromPendingAndLimitApplies(t *testing.T, s OutboxStore) {
	ctx := context.Background()
	_, err := s.Append(ctx, "a", sourcing.Any, events(5, "e")...)
	require.NoError(t, err)
	msgs, err := s.PendingOutbox(ctx, 2)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.NoError(t, s.MarkSent(ctx, msgs[0].ID, msgs[1].ID))
	rest, err := s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Len(t, rest, 3)
	assert.Greater(t, rest[0].ID, msgs[1].ID)
	require.NoError(t, s.MarkSent(ctx, rest[0].ID, rest[0].ID)) // twice is harmless
	require.NoError(t, s.MarkSent(ctx))
	rest, err = s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	assert.Len(t, rest, 2)
}

func outboxRelayPublishesInOrderAndMarksSent(t *testing.T, s OutboxStore) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, err := s.Append(ctx, "a", sourcing.Any, events(4, "e")...)
		require.NoError(t, err)
		_, err = s.Append(ctx, "b", sourcing.Any, events(2, "e")...)
		require.NoError(t, err)
	}
	pub := &recordingPublisher{}
	r := &sourcing.Relay{Outbox: s, Bus: pub, BatchSize: 5}
	n, err := r.Flush(ctx)
	require.NoError(t, err)
	assert.Equal(t, 18, n)
	left, err := s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	assert.Empty(t, left)
	assertStreamOrder(t, s, pub.all(), true)
	for _, p := range pub.all() {
		assert.Equal(t, "topic-"+p.stream[:1], p.topic)
	}
}

func outboxRelayHoldsBackAStreamAfterAFailure(t *testing.T, s OutboxStore) {
	ctx := context.Background()
	_, err := s.Append(ctx, "a", sourcing.Any, events(3, "e")...)
	require.NoError(t, err)
	_, err = s.Append(ctx, "b", sourcing.Any, events(2, "e")...)
	require.NoError(t, err)
	// The bus refuses the second event of stream a once.
	pub := &recordingPublisher{failOnce: map[string]bool{}}
	msgs, err := s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	pub.failOnce[msgs[1].Event.ID()] = true
	r := &sourcing.Relay{Outbox: s, Bus: pub}
	_, err = r.Flush(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, errRefused), "the cause is kept: %v", err)
	left, err := s.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Len(t, left, 2, "a's refused event and the one after it stay pending")
	assert.Equal(t, msgs[1].ID, left[0].ID)
	assert.Equal(t, msgs[2].ID, left[1].ID)
	n, err := r.Flush(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assertStreamOrder(t, s, pub.all(), false)
}

var errRefused = errors.New("storetest: publish refused")

type published struct {
	topic, stream, id string
}

// recordingPublisher is a crossbus.Publisher that records what it accepts and
// refuses listed event ids once.
type recordingPublisher struct {
	mu       sync.Mutex
	got      []published
	failOnce map[string]bool
}

func (p *recordingPublisher) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pe crossbus.PublishError
	for i, e := range events {
		if p.failOnce[e.ID()] {
			delete(p.failOnce, e.ID())
			pe.Failed = append(pe.Failed, crossbus.EventError{Index: i, EventID: e.ID(), Err: errRefused})
			continue
		}
		p.got = append(p.got, published{topic: topic, stream: crossbus.PartitionKey(e), id: e.ID()})
	}
	if pe.Failed != nil {
		return &pe
	}
	return nil
}

func (p *recordingPublisher) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.got...)
}

// assertStreamOrder checks that every appended event was published, with its
// stream as partition key, and that the last publication of each event of a
// stream is in version order (an event the bus took ahead of a refused
// predecessor is published again after it). exactlyOnce also requires that
// nothing was published twice.
func assertStreamOrder(t *testing.T, s sourcing.Store, pubs []published, exactlyOnce bool) {
	t.Helper()
	recs, err := sourcing.Collect(s.ReadAll(context.Background(), 1))
	require.NoError(t, err)
	version := map[string]uint64{}
	stream := map[string]string{}
	for _, r := range recs {
		version[r.Event.ID()] = r.Version
		stream[r.Event.ID()] = r.Stream
	}
	if exactlyOnce {
		require.Len(t, pubs, len(recs), "every event published once")
	}
	lastAt := map[string]int{}
	for i, p := range pubs {
		_, ok := version[p.id]
		require.True(t, ok, "published %s was appended", p.id)
		assert.Equal(t, stream[p.id], p.stream, "partition key is the stream")
		lastAt[p.id] = i
	}
	require.Len(t, lastAt, len(recs), "every event published")
	byStream := map[string][]string{}
	for _, r := range recs {
		byStream[r.Stream] = append(byStream[r.Stream], r.Event.ID())
	}
	for st, ids := range byStream {
		for i := 1; i < len(ids); i++ {
			assert.Less(t, lastAt[ids[i-1]], lastAt[ids[i]], "stream %s: version %d last published before version %d", st, i, i+1)
		}
	}
}
