package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// TestFetchErrorsThatStopASubscription checks how fetch errors are sorted:
// authorization failures (group ones arrive wrapped in a group session
// error) and a topic that is gone, or is another topic now, stop the
// subscription; an unknown-topic error for a topic that is still there and
// other retriable errors are left to the client; the rest are reported as
// transient.
func TestFetchErrorsThatStopASubscription(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ctx := context.Background()
	p, err := New(ctx, Options{Brokers: c.ListenAddrs()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	id, exists, err := p.lookupTopic(ctx, "events")
	require.NoError(t, err)
	require.True(t, exists)
	require.NotEqual(t, noTopicID, id, "kfake has topic IDs")

	newReceiver := func(topic string, id [16]byte) *receiver {
		r := &receiver{p: p, spec: driver.SubscriptionSpec{Topic: topic, Name: "billing"}, topicID: id, errs: make(chan error, 1)}
		r.ctx, r.cancel = context.WithCancel(ctx)
		t.Cleanup(r.cancel)
		return r
	}
	reported := func(r *receiver) error {
		select {
		case err := <-r.errs:
			return err
		default:
			return nil
		}
	}

	r := newReceiver("events", id)
	for _, err := range []error{kerr.TopicAuthorizationFailed, &kgo.ErrGroupSession{Err: kerr.GroupAuthorizationFailed},
		kerr.ClusterAuthorizationFailed, kerr.SaslAuthenticationFailed} {
		got := r.fetchFailed("events", 0, err)
		assert.ErrorIs(t, got, crossbus.ErrUnauthorized, "%v", err)
		assert.ErrorIs(t, got, err)
	}
	assert.NoError(t, r.fetchFailed("events", 0, kerr.UnknownTopicOrPartition), "the topic is still there")
	assert.NoError(t, r.fetchFailed("events", 0, kerr.NotLeaderForPartition))
	assert.NoError(t, reported(r), "retriable errors are the client's")
	assert.NoError(t, r.fetchFailed("events", 0, kerr.InvalidFetchSize))
	assert.ErrorIs(t, reported(r), kerr.InvalidFetchSize, "other errors are reported as transient")

	r = newReceiver("events", [16]byte{1})
	got := r.fetchFailed("events", 0, kerr.UnknownTopicID)
	assert.ErrorIs(t, got, crossbus.ErrTopicNotFound, "the topic has another ID: it was deleted and created again")
	assert.ErrorContains(t, got, "created again")

	r = newReceiver("gone", id)
	got = r.fetchFailed("gone", 0, kerr.UnknownTopicOrPartition)
	assert.ErrorIs(t, got, crossbus.ErrTopicNotFound)
	assert.ErrorContains(t, got, `topic "gone" was deleted`)

	r = newReceiver("gone", id)
	r.probed = time.Now()
	assert.NoError(t, r.fetchFailed("gone", 0, kerr.UnknownTopicOrPartition), "one lookup per probeEvery")
}
