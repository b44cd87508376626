package kafka_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/kafka"
)

// TestUndecodableRecordIsDeadLetteredByTheCore produces a plain record (no
// CloudEvent) to a topic: no handler sees it, and the portable layer stores
// it in the subscription's dead-letter topic as the undecodable placeholder,
// with its value, key, headers and the decode error as the reason; the
// records after it are handled.
func TestUndecodableRecordIsDeadLetteredByTheCore(t *testing.T) {
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
	res, err := cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Key: []byte("k1"), Value: []byte("not an event"),
		Headers: []kgo.RecordHeader{{Key: "legacy", Value: []byte("1")}, {Key: "blob", Value: []byte{0xff, 0xfe}}}}).First()
	require.NoError(t, err)
	good := crossbus.NewEvent("com.example.order", "/t")
	good.SetExtension(crossbus.ExtPartitionKey, "k1") // the same partition, after the plain record
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
	buf := make([]driver.Delivery, 1)
	n, err := r.Receive(rctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	u, ok := buf[0].(driver.Undecodable)
	require.True(t, ok)
	assert.NoError(t, u.DecodeError(), "the placeholder itself is a CloudEvent")
	dl := buf[0].Event()
	assert.Equal(t, driver.TypeUndecodable, dl.Type())
	assert.Equal(t, fmt.Sprintf("events-%d-%d", res.Partition, res.Offset), dl.ID(), "topic, partition and offset")
	assert.Equal(t, "/kafka/topics/events", dl.Source())
	assert.Equal(t, "application/octet-stream", dl.DataContentType())
	assert.Equal(t, "not an event", string(dl.Data()))
	assert.Equal(t, "k1", crossbus.ExtensionString(dl, kafka.ExtRawKey))
	var hs map[string]string
	require.NoError(t, json.Unmarshal([]byte(crossbus.ExtensionString(dl, driver.ExtRawHeaders)), &hs))
	assert.Equal(t, map[string]string{"legacy": "1", "blob": base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe})}, hs)
	info, ok := crossbus.DeadLetterInfoOf(dl)
	require.True(t, ok)
	assert.Contains(t, info.Reason, "undecodable")
	assert.Contains(t, info.Reason, "not a CloudEvent")
	assert.Equal(t, "events", info.Topic)
	assert.Equal(t, "billing", info.Subscription)
	assert.Equal(t, 1, info.Attempts)
	assert.ErrorIs(t, buf[0].DeadLetter(ctx, crossbus.DeadLetterInfo{}), crossbus.ErrNotSupported)
	require.NoError(t, buf[0].Ack(ctx))
	assert.Error(t, buf[0].Ack(ctx), "a delivery settles once")
}

// TestUndecodableDeadLetterIsHandedOut produces a record that is not a
// CloudEvent straight into a dead-letter topic: its reader returns it as an
// undecodable delivery (nothing is skipped), which can be settled.
func TestUndecodableDeadLetterIsHandedOut(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	p, err := kafka.New(ctx, testOptions(c))
	require.NoError(t, err)
	defer p.Close(ctx)
	require.NoError(t, p.CreateTopic(ctx, kafka.DeadLetterTopic("events", "billing")))
	var cl *kgo.Client
	require.True(t, p.As(&cl))
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: kafka.DeadLetterTopic("events", "billing"), Key: []byte{0xff}, Value: []byte("{")}).FirstErr())

	r, err := p.SubscribeDeadLetters(ctx, "events", "billing")
	require.NoError(t, err)
	defer r.Close(ctx)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, 1)
	n, err := r.Receive(rctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	u, ok := buf[0].(driver.Undecodable)
	require.True(t, ok)
	require.ErrorContains(t, u.DecodeError(), "not a CloudEvent")
	assert.Equal(t, driver.TypeUndecodable, buf[0].Event().Type())
	assert.Equal(t, "{", string(buf[0].Event().Data()))
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte{0xff}), crossbus.ExtensionString(buf[0].Event(), kafka.ExtRawKey))
	_, isDeadLetter := crossbus.DeadLetterInfoOf(buf[0].Event())
	assert.False(t, isDeadLetter)
	assert.ErrorIs(t, buf[0].DeadLetter(ctx, crossbus.DeadLetterInfo{}), crossbus.ErrNotSupported)
	require.NoError(t, buf[0].Ack(ctx))
}
