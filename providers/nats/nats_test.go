package nats_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/nats"
	"github.com/crossbus/crossbus/providers/providertest"
)

// startServer runs a JetStream server on a free localhost port for the test.
func startServer(t testing.TB, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats-server not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// harness runs the suite against one JetStream server; every NewProvider is
// a separate client connection with AutoCreate off, so missing topics fail as
// on a strictly managed cluster.
type harness struct {
	t     *testing.T
	url   string
	admin *nats.Provider
}

func newHarness(t *testing.T, srv *server.Server) *harness {
	ctx := context.Background()
	admin, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	return &harness{t: t, url: srv.ClientURL(), admin: admin}
}

func (h *harness) NewProvider(ctx context.Context) (driver.Provider, error) {
	return nats.New(ctx, nats.Options{Servers: h.url})
}

func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	return h.admin.CreateTopic(ctx, topic)
}

func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	return h.admin.CreateSubscription(ctx, topic, sub, o.Ordered)
}

// DeleteSubscription deletes the subscription's durable consumer (a portable
// subscription name is its consumer's name): the running receiver's pull
// ends with "409 Consumer Deleted", and it reports
// crossbus.ErrSubscriptionNotFound.
func (h *harness) DeleteSubscription(ctx context.Context, topic, sub string) error {
	var js jetstream.JetStream
	require.True(h.t, h.admin.As(&js))
	stream, err := js.StreamNameBySubject(ctx, topic)
	if err != nil {
		return err
	}
	return js.DeleteConsumer(ctx, stream, sub)
}

// PublishRaw publishes payload on the topic's subject with no headers.
func (h *harness) PublishRaw(ctx context.Context, topic string, payload []byte) error {
	var js jetstream.JetStream
	require.True(h.t, h.admin.As(&js))
	_, err := js.PublishMsg(ctx, &natsio.Msg{Subject: topic, Data: payload})
	return err
}

// AsTarget names the native client As must reach.
func (h *harness) AsTarget() any { return new(*natsio.Conn) }

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: time.Second, Timeout: 20 * time.Second}
}

var (
	_ providertest.SubscriptionDeleter = (*harness)(nil)
	_ providertest.RawPublisher        = (*harness)(nil)
)

func TestConformance(t *testing.T) {
	srv := startServer(t, "")
	providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, srv) })
}

// TestConformanceLive runs the suite against an external NATS server with
// JetStream when CROSSBUS_NATS_URL names one (for example
// nats://127.0.0.1:4222).
func TestConformanceLive(t *testing.T) {
	url := os.Getenv("CROSSBUS_NATS_URL")
	if url == "" {
		t.Skip("CROSSBUS_NATS_URL is not set: no external NATS server to test against")
	}
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		admin, err := nats.New(context.Background(), nats.Options{Servers: url})
		require.NoError(t, err)
		t.Cleanup(func() { _ = admin.Close(context.Background()) })
		return &harness{t: t, url: url, admin: admin}
	})
}
