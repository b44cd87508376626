package interop_test

import (
	"context"
	"encoding/json"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	cepubsub "github.com/cloudevents/sdk-go/protocol/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

const pubsubProject = "interop"

// structuredTypes is what extensionTypes says of the extensions fixture
// after the JSON event format: Boolean and Integer are JSON values, the
// other types strings.
const structuredTypes = "at:String blob:String count:Integer delta:Integer flag:Boolean link:String note:String ref:String tenant:String"

func newPubSubClient(t *testing.T, srv *pstest.Server) *pubsub.Client {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	c, err := pubsub.NewClient(context.Background(), pubsubProject, option.WithGRPCConn(conn))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(); _ = conn.Close() })
	return c
}

func newPubSubProvider(t *testing.T, srv *pstest.Server, spelling pubsubwire.Spelling, mode pubsubwire.Mode) *gcp.Provider {
	t.Helper()
	p, err := gcp.New(context.Background(), gcp.Options{Project: pubsubProject, Endpoint: srv.Addr, Insecure: true,
		AttributeSpelling: spelling, ContentMode: mode})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// sdkPubSub is the SDK's Pub/Sub protocol for a topic (and, when sub is
// not empty, receiving from sub).
func sdkPubSub(t *testing.T, ctx context.Context, c *pubsub.Client, topic, sub string) *cepubsub.Protocol {
	t.Helper()
	opts := []cepubsub.Option{cepubsub.WithClient(c), cepubsub.WithProjectID(pubsubProject), cepubsub.WithTopicID(topic)}
	if sub != "" {
		opts = append(opts, cepubsub.WithSubscriptionAndTopicID(sub, topic))
	}
	p, err := cepubsub.New(ctx, opts...)
	require.NoError(t, err)
	if sub != "" {
		inbound, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = p.OpenInbound(inbound)
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	return p
}

func TestPubSub(t *testing.T) {
	srv := pstest.NewServer()
	t.Cleanup(func() { _ = srv.Close() })
	ctx := testCtx(t)
	raw := newPubSubClient(t, srv)
	admin := newPubSubProvider(t, srv, pubsubwire.GoogleSpelling, pubsubwire.Binary)
	for _, topic := range []string{"in", "out"} {
		require.NoError(t, admin.CreateTopic(ctx, topic))
	}
	subscribe := func(t *testing.T, p *gcp.Provider, topic, sub string) driver.Receiver {
		require.NoError(t, admin.CreateSubscription(ctx, topic, sub, gcp.SubscriptionConfig{}))
		r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		return r
	}

	t.Run("SDK binary to crossbus", func(t *testing.T) {
		// The SDK writes Content-Type capitalised; crossbus reads either
		// spelling.
		r := subscribe(t, admin, "in", "binary")
		c, err := client.New(sdkPubSub(t, ctx, raw, "in", ""))
		require.NoError(t, err)
		fs := fixtures(t)
		sdkSend(t, ctx, c, fs)
		for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
			assertSame(t, got, expect{types: allStrings})
		}
	})

	t.Run("SDK structured to crossbus", func(t *testing.T) {
		r := subscribe(t, admin, "in", "structured")
		c, err := client.New(sdkPubSub(t, ctx, raw, "in", ""))
		require.NoError(t, err)
		// The SDK's structured writer sets no attribute at all: by Google's
		// binding that is a plain message, which crossbus delivers as
		// messagePublished (and the SDK's own reader cannot read).
		attrs := fixtureByID(t, "attrs-1")
		sdkSend(t, binding.WithForceStructured(ctx), c, []fixture{attrs})
		plain := crossbusReceive(t, ctx, r, 1)[0]
		assert.Equal(t, pubsubwire.MessagePublishedType, plain.Type())
		d, err := crossbus.DataAs[pubsubwire.MessagePublishedData](plain)
		require.NoError(t, err)
		var inner map[string]any
		require.NoError(t, json.Unmarshal(d.Message.Data, &inner))
		assert.Equal(t, "attrs-1", inner["id"], "the structured event is the message data")

		// With the content type given as a custom attribute, it is read as
		// the event.
		fs := fixtures(t)
		for _, f := range fs {
			sendCtx := cepubsub.WithCustomAttributes(binding.WithForceStructured(ctx), map[string]string{"Content-Type": "application/cloudevents+json"})
			res := c.Send(sendCtx, sdkEvent(f))
			require.True(t, protocol.IsACK(res), "%s: %v", f.name, res)
		}
		for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
			assertSame(t, got, expect{types: structuredTypes})
		}
	})

	for _, tc := range []struct {
		name     string
		spelling pubsubwire.Spelling
		mode     pubsubwire.Mode
		x        expect
	}{
		{"binary, Google's spelling", pubsubwire.GoogleSpelling, pubsubwire.Binary, expect{types: allStrings,
			limits: map[string]string{"datacontenttype": "the SDK reads only Content-Type"}}},
		{"binary, SDK spelling", pubsubwire.SDKSpelling, pubsubwire.Binary, expect{types: allStrings}},
		{"structured, SDK spelling", pubsubwire.SDKSpelling, pubsubwire.Structured, expect{types: structuredTypes}},
	} {
		t.Run("crossbus "+tc.name+" to SDK", func(t *testing.T) {
			sub := "sdk-" + tc.spelling.String() + "-" + tc.mode.String()
			require.NoError(t, admin.CreateSubscription(ctx, "out", sub, gcp.SubscriptionConfig{}))
			receiver := sdkPubSub(t, ctx, raw, "out", sub)
			p := newPubSubProvider(t, srv, tc.spelling, tc.mode)
			fs := fixtures(t)
			require.NoError(t, p.Publish(ctx, "out", events(fs)))
			for _, got := range sdkReceive(t, ctx, receiver, len(fs)) {
				x := tc.x
				if len(fixtureByID(t, got.ID()).ev.DataContentType()) == 0 {
					x.limits = nil // nothing to lose
				}
				assertSame(t, got, x)
			}
		})
	}

	t.Run("crossbus structured, Google's spelling, to SDK", func(t *testing.T) {
		require.NoError(t, admin.CreateSubscription(ctx, "out", "sdk-google-structured", gcp.SubscriptionConfig{}))
		receiver := sdkPubSub(t, ctx, raw, "out", "sdk-google-structured")
		p := newPubSubProvider(t, srv, pubsubwire.GoogleSpelling, pubsubwire.Structured)
		attrs := fixtureByID(t, "attrs-1").ev
		require.NoError(t, p.Publish(ctx, "out", []*crossbus.Event{&attrs}))
		m, err := receiver.Receive(ctx)
		require.NoError(t, err)
		defer m.Finish(nil)
		_, err = binding.ToEvent(ctx, m)
		assert.ErrorIs(t, err, binding.ErrUnknownEncoding, "the SDK does not see content-type, so not a structured message")
	})
}
