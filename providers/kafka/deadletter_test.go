package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/kafka"
)

// TestUndecodableRecordGoesToTheDeadLetterTopic produces a plain record (no
// CloudEvent) to a topic: no handler sees it, the subscription's dead-letter
// topic holds it with its value, key and the reason, and the records after
// it are committed past it.
func TestUndecodableRecordGoesToTheDeadLetterTopic(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	p, err := kafka.New(ctx, testOptions(c))
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	defer bus.Close(ctx)
	require.NoError(t, p.CreateSubscription(ctx, "events", "billing"))
	handled := make(chan string, 10)
	_, err = bus.Subscribe(ctx, "events", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		handled <- e.ID()
		return nil
	}))
	require.NoError(t, err)

	var cl *kgo.Client
	require.True(t, p.As(&cl))
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Key: []byte("k1"), Value: []byte("not an event"),
		Headers: []kgo.RecordHeader{{Key: "legacy", Value: []byte("1")}}}).FirstErr())
	good := crossbus.NewEvent("com.example.order", "/t")
	require.NoError(t, bus.Publish(ctx, "events", &good))
	select {
	case id := <-handled:
		assert.Equal(t, good.ID(), id, "only the CloudEvent reaches the handler")
	case <-time.After(15 * time.Second):
		t.Fatal("the good event was not handled")
	}

	r, err := p.SubscribeDeadLetters(ctx, "events", "billing")
	require.NoError(t, err)
	defer r.Close(ctx)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	buf := make([]crossbus.Delivery, 1)
	n, err := r.Receive(rctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	dl := buf[0].Event()
	assert.Equal(t, kafka.TypeUndecodable, dl.Type())
	assert.Equal(t, "not an event", string(dl.Data()))
	assert.Equal(t, "k1", crossbus.ExtensionString(dl, kafka.ExtRawKey))
	assert.Contains(t, crossbus.ExtensionString(dl, kafka.ExtRawHeaders), `"legacy"`)
	info, ok := crossbus.DeadLetterInfoOf(dl)
	require.True(t, ok)
	assert.Contains(t, info.Reason, "not a CloudEvent")
	assert.Equal(t, "events", info.Topic)
	assert.Equal(t, "billing", info.Subscription)
	assert.ErrorIs(t, buf[0].DeadLetter(ctx, crossbus.DeadLetterInfo{}), crossbus.ErrNotSupported)
	require.NoError(t, buf[0].Ack(ctx))
	assert.Error(t, buf[0].Ack(ctx), "a delivery settles once")
}
