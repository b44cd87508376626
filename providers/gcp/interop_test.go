package gcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// rawPull pulls n messages with the raw client and acknowledges them.
func rawPull(t *testing.T, c *pubsub.Client, sub string, n int) []*pb.ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*pb.ReceivedMessage
	for len(out) < n {
		resp, err := c.SubscriptionAdminClient.Pull(ctx, &pb.PullRequest{Subscription: "projects/" + project + "/subscriptions/" + sub, MaxMessages: int32(n - len(out))})
		require.NoError(t, err)
		for _, m := range resp.ReceivedMessages {
			require.NoError(t, c.SubscriptionAdminClient.Acknowledge(ctx, &pb.AcknowledgeRequest{
				Subscription: "projects/" + project + "/subscriptions/" + sub, AckIds: []string{m.AckId}}))
		}
		out = append(out, resp.ReceivedMessages...)
	}
	return out
}

// receiveOne reads one event through crossbus's receiver and acks it.
func receiveOne(t *testing.T, p *gcp.Provider, topic, sub string) *crossbus.Event {
	t.Helper()
	r, err := p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, 1)
	n, err := r.Receive(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, buf[0].Ack(ctx))
	e := buf[0].Event().Clone()
	return &e
}

func setupTopic(t *testing.T, p *gcp.Provider, topic string, subs ...string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, p.CreateTopic(ctx, topic))
	for _, s := range subs {
		require.NoError(t, p.CreateSubscription(ctx, topic, s, gcp.SubscriptionConfig{}))
	}
}

func TestInteropCrossbusEventReadByRawClientCarriesExactlyTheBindingAttributes(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	raw := newRawClient(t, srv)
	setupTopic(t, p, "orders", "raw-reader")
	b := newBus(t, p)

	e := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	e.SetID("order-42")
	e.SetSubject("orders/42")
	e.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 0, time.UTC))
	require.NoError(t, crossbus.SetData(&e, map[string]int{"amount": 5}))
	e.SetExtension("tenant", "acme")
	crossbus.SetPartitionKey(&e, "customer-9")
	require.NoError(t, b.Publish(context.Background(), "orders", &e))

	m := rawPull(t, raw, "raw-reader", 1)[0].Message
	assert.Equal(t, map[string]string{
		"ce-specversion":  "1.0",
		"ce-id":           "order-42",
		"ce-source":       "https://example.com/shop",
		"ce-type":         "com.example.order.placed",
		"ce-subject":      "orders/42",
		"ce-time":         "2026-11-29T12:30:45Z",
		"ce-tenant":       "acme",
		"ce-partitionkey": "customer-9",
		"content-type":    "application/json",
	}, m.Attributes, "binary mode: lower-case ce- attributes and content-type, nothing else")
	assert.JSONEq(t, `{"amount":5}`, string(m.Data), "the data is the message body")
	assert.Equal(t, "customer-9", m.OrderingKey, "partitionkey is the ordering key")
}

func TestInteropRawBinaryMessageIsReadAsTheCloudEvent(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	raw := newRawClient(t, srv)
	setupTopic(t, p, "orders", "crossbus-reader")
	pub := raw.Publisher("orders")
	defer pub.Stop()
	_, err := pub.Publish(context.Background(), &pubsub.Message{
		Data: []byte("<order id='42'/>"),
		Attributes: map[string]string{
			"ce-specversion": "1.0", "ce-id": "legacy-1", "ce-source": "/erp", "ce-type": "com.example.order.placed",
			"ce-time": "2026-11-29T08:00:00.5Z", "ce-dataschema": "https://example.com/order.xsd", "ce-region": "eu",
			"content-type": "application/xml",
		},
	}).Get(context.Background())
	require.NoError(t, err)

	e := receiveOne(t, p, "orders", "crossbus-reader")
	assert.Equal(t, "legacy-1", e.ID())
	assert.Equal(t, "/erp", e.Source())
	assert.Equal(t, "com.example.order.placed", e.Type())
	assert.True(t, time.Date(2026, 11, 29, 8, 0, 0, 500_000_000, time.UTC).Equal(e.Time()))
	assert.Equal(t, "https://example.com/order.xsd", e.DataSchema())
	assert.Equal(t, "application/xml", e.DataContentType())
	assert.Equal(t, "<order id='42'/>", string(e.Data()))
	assert.Equal(t, map[string]any{"region": "eu"}, e.Extensions())
}

func TestInteropRawPlainMessageArrivesAsMessagePublished(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	raw := newRawClient(t, srv)
	setupTopic(t, p, "legacy", "reader")
	pub := raw.Publisher("legacy")
	defer pub.Stop()
	id, err := pub.Publish(context.Background(), &pubsub.Message{Data: []byte("hello"), Attributes: map[string]string{"origin": "cron"}}).Get(context.Background())
	require.NoError(t, err)

	e := receiveOne(t, p, "legacy", "reader")
	assert.Equal(t, pubsubwire.MessagePublishedType, e.Type())
	assert.Equal(t, "//pubsub.googleapis.com/projects/"+project+"/topics/legacy", e.Source())
	assert.Equal(t, id, e.ID())
	assert.False(t, e.Time().IsZero(), "time is the publish time")
	d, err := crossbus.DataAs[pubsubwire.MessagePublishedData](e)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(d.Message.Data))
	assert.Equal(t, map[string]string{"origin": "cron"}, d.Message.Attributes)
	assert.Equal(t, id, d.Message.MessageID)
	assert.Equal(t, "projects/"+project+"/subscriptions/reader", d.Subscription)
}

func TestInteropStructuredFallbackOnTheWire(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	raw := newRawClient(t, srv)
	setupTopic(t, p, "wide", "raw-reader", "crossbus-reader")
	b := newBus(t, p)
	e := crossbus.NewEvent("com.example.wide", "/w")
	require.NoError(t, crossbus.SetData(&e, []byte{0, 1, 2}))
	for i := 0; i < 120; i++ { // more attributes than a Pub/Sub message may carry
		e.SetExtension(fmt.Sprintf("x%03d", i), "v")
	}
	require.NoError(t, b.Publish(context.Background(), "wide", &e))

	m := rawPull(t, raw, "raw-reader", 1)[0].Message
	assert.Equal(t, pubsubwire.StructuredContentType, m.Attributes["content-type"])
	assert.NotContains(t, m.Attributes, "ce-specversion")
	assert.LessOrEqual(t, len(m.Attributes), pubsubwire.MaxAttributes)
	var body map[string]any
	require.NoError(t, json.Unmarshal(m.Data, &body))
	assert.Equal(t, "AAEC", body["data_base64"], "binary data is base64 in the JSON format")
	assert.Equal(t, "v", body["x119"])

	got := receiveOne(t, p, "wide", "crossbus-reader")
	assert.Equal(t, e.ID(), got.ID())
	assert.Equal(t, []byte{0, 1, 2}, got.Data())
	assert.Len(t, got.Extensions(), 120)
}

func TestInteropCloudEventsSDKSpelling(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	raw := newRawClient(t, srv)
	setupTopic(t, p, "sdk", "reader")
	pub := raw.Publisher("sdk")
	defer pub.Stop()
	// The CloudEvents Go SDK's Pub/Sub binding writes Content-Type capitalised.
	_, err := pub.Publish(context.Background(), &pubsub.Message{Data: []byte(`{"a":1}`), Attributes: map[string]string{
		"ce-specversion": "1.0", "ce-id": "sdk-1", "ce-source": "/sdk", "ce-type": "t", "Content-Type": "application/json"}}).Get(context.Background())
	require.NoError(t, err)
	e := receiveOne(t, p, "sdk", "reader")
	assert.Equal(t, "application/json", e.DataContentType())
	assert.Equal(t, "sdk-1", e.ID())
}
