package interop_test

import (
	"context"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/nats"
)

// The SDK's JetStream binding (protocol/nats_jetstream/v2) creates a stream
// named after its first argument capturing "<stream>.*"; crossbus finds that
// stream for its subjects "interop.<topic>" (SubjectPrefix "interop.").
const natsStream = "interop"

func startNATS(t *testing.T) (*server.Server, *natsio.Conn) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats-server not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	conn, err := natsio.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	return srv, conn
}

func newNATSProvider(t *testing.T, srv *server.Server, hv nats.HeaderValues) *nats.Provider {
	t.Helper()
	p, err := nats.New(context.Background(), nats.Options{Servers: srv.ClientURL(), SubjectPrefix: natsStream + ".", AutoCreate: true, HeaderValues: hv})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// sdkNATSSender is the SDK's JetStream sender on subject interop.<topic>
// (creating the stream when it is not there yet).
func sdkNATSSender(t *testing.T, conn *natsio.Conn, topic string) client.Client {
	t.Helper()
	s, err := cejs.NewSenderFromConn(conn, natsStream, natsStream+"."+topic, nil)
	require.NoError(t, err)
	c, err := client.New(s)
	require.NoError(t, err)
	return c
}

// sdkNATSConsumer is the SDK's JetStream consumer of interop.<topic>,
// receiving the subject's messages from the start of the stream.
func sdkNATSConsumer(t *testing.T, ctx context.Context, conn *natsio.Conn, topic string) protocol.Receiver {
	t.Helper()
	c, err := cejs.NewConsumerFromConn(conn, natsStream, natsStream+"."+topic, nil, nil)
	require.NoError(t, err)
	inbound, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.OpenInbound(inbound)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func sdkSend(t *testing.T, ctx context.Context, c client.Client, fs []fixture) {
	t.Helper()
	for _, f := range fs {
		res := c.Send(ctx, sdkEvent(f))
		require.True(t, protocol.IsACK(res), "%s: %v", f.name, res)
	}
}

// natsSDKWriterLimits are what the SDK's JetStream writer gets wrong: it
// formats extension values with fmt.Sprint instead of their canonical
// strings.
var natsSDKWriterLimits = map[string]string{
	"blob": "Binary written with fmt.Sprint ([0 1 2 254 255]), not base64",
	"link": "URI written with fmt.Sprint of the struct",
	"ref":  "URI-reference written with fmt.Sprint of the struct",
}

func TestNATS(t *testing.T) {
	srv, conn := startNATS(t)
	ctx := testCtx(t)
	// The SDK creates the stream first, so crossbus finds it.
	sender := sdkNATSSender(t, conn, "in")

	t.Run("SDK binary to crossbus", func(t *testing.T) {
		p := newNATSProvider(t, srv, nats.HeaderValuesVerbatim)
		r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "in", Name: "binary"})
		require.NoError(t, err)
		defer r.Close(ctx)
		fs := fixtures(t)
		sdkSend(t, ctx, sender, fs)
		for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
			assertSame(t, got, expect{limits: natsSDKWriterLimits, types: allStrings})
		}
	})

	t.Run("SDK structured to crossbus", func(t *testing.T) {
		// The SDK's structured mode is the NATS binding 1.0.2 form: the
		// JSON event format as payload and no headers at all.
		p := newNATSProvider(t, srv, nats.HeaderValuesVerbatim)
		r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "in", Name: "structured"})
		require.NoError(t, err)
		defer r.Close(ctx)
		fs := fixtures(t)
		sdkSend(t, binding.WithForceStructured(ctx), sender, fs)
		for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
			assertSame(t, got, expect{types: "at:String blob:String count:Integer delta:Integer flag:Boolean link:String note:String ref:String tenant:String"})
		}
	})

	t.Run("crossbus to SDK", func(t *testing.T) {
		p := newNATSProvider(t, srv, nats.HeaderValuesVerbatim)
		consumer := sdkNATSConsumer(t, ctx, conn, "out")
		fs := fixtures(t)
		// An event with a line break in a value goes structured: a header
		// cannot carry it as it is.
		multiline := crossbus.NewEvent("com.example.multiline", "/sources/multiline")
		multiline.SetSubject("line 1\nline 2")
		multiline.SetExtension("note", " padded ")
		require.NoError(t, p.Publish(ctx, "out", append(events(fs), &multiline)))
		got := sdkReceive(t, ctx, consumer, len(fs)+1)
		for _, e := range got[:len(fs)] {
			assertSame(t, e, expect{types: allStrings})
		}
		last := got[len(fs)]
		assert.Equal(t, multiline.ID(), last.ID())
		assert.Equal(t, "line 1\nline 2", last.Subject())
		assert.Equal(t, " padded ", crossbus.ExtensionString(last, "note"))
	})

	t.Run("percent-encoded header values", func(t *testing.T) {
		// headervalues=percent follows the binding's working draft: the SDK,
		// which does not decode, sees the escapes; and crossbus decodes what
		// the SDK sent unescaped.
		p := newNATSProvider(t, srv, nats.HeaderValuesPercent)
		consumer := sdkNATSConsumer(t, ctx, conn, "percent")
		attrs := fixtureByID(t, "attrs-1").ev
		attrs.SetID("attrs-percent") // the stream already holds attrs-1: JetStream would drop it as a duplicate
		require.NoError(t, p.Publish(ctx, "percent", []*crossbus.Event{&attrs}))
		got := sdkReceive(t, ctx, consumer, 1)[0]
		assert.Equal(t, "https://example.com/sources/m%25C3%25BCnchen", got.Source())
		assert.Equal(t, "gr%C3%B6%C3%9Fe%2042%20%E2%80%93%20100%25%20%E2%82%AC", got.Subject())

		r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "in", Name: "percent"})
		require.NoError(t, err)
		defer r.Close(ctx)
		sdkSend(t, ctx, sender, []fixture{fixtureByID(t, "ext-1")})
		in := crossbusReceive(t, ctx, r, 1)[0]
		assert.Equal(t, "100% mü €", crossbus.ExtensionString(in, "note"), "a percent-decoding reader alters an SDK writer's value")
	})
}
