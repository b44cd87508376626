package gcp_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

func TestOptionsFromURL(t *testing.T) {
	u, _ := url.Parse("gcppubsub://projects/my-proj?endpoint=localhost:8085&insecure=true&contentmode=structured&orderingkeys=false" +
		"&attributespelling=sdk&publishdelay=2ms&publishcount=50&publishbytes=100000&maxoutstandingmessages=10&maxoutstandingbytes=2048&ackdeadline=45s&autocreate=true")
	o, err := gcp.OptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, gcp.Options{Project: "my-proj", Endpoint: "localhost:8085", Insecure: true, ContentMode: pubsubwire.Structured,
		AttributeSpelling: pubsubwire.SDKSpelling, DisableOrderingKeys: true, PublishDelay: 2 * time.Millisecond, PublishCount: 50, PublishBytes: 100000,
		MaxOutstandingMessages: 10, MaxOutstandingBytes: 2048, AckDeadline: 45 * time.Second, AutoCreate: true}, o)

	bad := map[string]string{
		"gcppubsub://my-proj":                                  "gcppubsub://projects/PROJECT",
		"gcppubsub://projects/":                                "gcppubsub://projects/PROJECT",
		"gcppubsub://projects/a/b":                             "gcppubsub://projects/PROJECT",
		"gcppubsub://projects/p?colour=blue":                   `"colour"`,
		"gcppubsub://projects/p?publishdelay=soon":             "publishdelay",
		"gcppubsub://projects/p?contentmode=xml":               "contentmode",
		"gcppubsub://projects/p?attributespelling=upper":       "attributespelling",
		"gcppubsub://projects/p?insecure=true":                 "needs endpoint",
		"gcppubsub://projects/p?ackdeadline=11m":               "AckDeadline",
		"gcppubsub://projects/p?publishcount=5000":             "PublishCount",
		"gcppubsub://projects/p?maxoutstandingmessages=-1":     "MaxOutstandingMessages",
		"gcppubsub://projects/p?maxoutstandingbytes=lots":      "maxoutstandingbytes",
		"gcppubsub://projects/p?autocreate=maybe&endpoint=x:1": "autocreate",
	}
	for raw, want := range bad {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		_, err = gcp.OptionsFromURL(u)
		require.Error(t, err, raw)
		assert.Contains(t, err.Error(), want, raw)
		assert.True(t, assertIsOneOf(err, crossbus.ErrInvalidURL, crossbus.ErrInvalidOption), raw)
	}
}

func assertIsOneOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func TestNewNeedsAProject(t *testing.T) {
	_, err := gcp.New(context.Background(), gcp.Options{})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "Project")
}

// roundTrip publishes one event through bus and reads it with a receiver.
func roundTrip(t *testing.T, b *crossbus.Bus, topic, sub string) {
	t.Helper()
	ctx := context.Background()
	e := crossbus.NewEvent("com.example.t", "/t")
	require.NoError(t, b.Publish(ctx, topic, &e))
	r, err := b.Provider().Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(ctx)
	d := receive(t, r, 1)
	require.Len(t, d, 1)
	assert.Equal(t, e.ID(), d[0].Event().ID())
	require.NoError(t, d[0].Ack(ctx))
}

func TestOpenHonoursPubSubEmulatorHost(t *testing.T) {
	srv := newServer(t)
	setupTopic(t, newProvider(t, srv), "orders", "billing")
	t.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	b, err := crossbus.Open(context.Background(), "gcppubsub://projects/"+project)
	require.NoError(t, err)
	defer b.Close(context.Background())
	roundTrip(t, b, "orders", "billing")
}

func TestOpenWithEndpointOverride(t *testing.T) {
	srv := newServer(t)
	setupTopic(t, newProvider(t, srv), "orders", "billing")
	b, err := crossbus.Open(context.Background(), "gcppubsub://projects/"+project+"?endpoint="+srv.Addr+"&insecure=true&publishdelay=1ms")
	require.NoError(t, err)
	defer b.Close(context.Background())
	roundTrip(t, b, "orders", "billing")
	var p *gcp.Provider
	require.True(t, b.As(&p))
	assert.Equal(t, project, p.Project())
}

func TestStructuredModeAndNoOrderingKeysByURL(t *testing.T) {
	srv := newServer(t)
	setupTopic(t, newProvider(t, srv), "orders", "raw")
	raw := newRawClient(t, srv)
	b, err := crossbus.Open(context.Background(), "gcppubsub://projects/"+project+"?endpoint="+srv.Addr+"&insecure=true&contentmode=structured&orderingkeys=false")
	require.NoError(t, err)
	defer b.Close(context.Background())
	e := crossbus.NewEvent("com.example.t", "/t")
	crossbus.SetPartitionKey(&e, "k")
	require.NoError(t, b.Publish(context.Background(), "orders", &e))
	m := rawPull(t, raw, "raw", 1)[0].Message
	assert.Equal(t, pubsubwire.StructuredContentType, m.Attributes["content-type"])
	assert.Empty(t, m.OrderingKey, "orderingkeys=false leaves the ordering key empty")
	assert.Equal(t, "k", m.Attributes["ce-partitionkey"])
}

func TestAsReachesTheClient(t *testing.T) {
	srv := newServer(t)
	p := newProvider(t, srv)
	var c *pubsub.Client
	require.True(t, p.As(&c))
	assert.Same(t, p.Client(), c)
	var got *gcp.Provider
	assert.True(t, p.As(&got))
	assert.Same(t, p, got)
	var s string
	assert.False(t, p.As(&s))
}
