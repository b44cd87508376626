package eventgrid_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
)

// testReleaseScale shortens Event Grid's release delays in tests: a 10 s
// release waits 1 s.
const testReleaseScale = 0.1

func newServer(t testing.TB) *egtest.Server {
	t.Helper()
	srv := egtest.NewServer(egtest.Options{ReleaseDelayScale: testReleaseScale})
	t.Cleanup(srv.Close)
	return srv
}

// namespaceOptions reach srv with its key.
func namespaceOptions(srv *egtest.Server) eventgrid.NamespaceOptions {
	return eventgrid.NamespaceOptions{Endpoint: srv.Endpoint(), Key: srv.Key(), ClientOptions: srv.ClientOptions(),
		MaxWaitTime: eventgrid.MinMaxWaitTime}
}

func newNamespace(t testing.TB, o eventgrid.NamespaceOptions) *eventgrid.Namespace {
	t.Helper()
	ns, err := eventgrid.NewNamespace(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Close(context.Background()) })
	return ns
}

func newBus(t testing.TB, p driver.Provider) *crossbus.Bus {
	t.Helper()
	b, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// topicWithSub creates a namespace topic with one queue subscription.
func topicWithSub(t testing.TB, srv *egtest.Server, cfg egtest.SubscriptionConfig) (topic, sub string) {
	t.Helper()
	topic, sub = uniqueName("topic"), uniqueName("sub")
	require.NoError(t, srv.CreateTopic(topic))
	require.NoError(t, srv.CreateSubscription(topic, sub, cfg))
	return topic, sub
}

func uniqueName(kind string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// receive opens a receiver and returns exactly n deliveries.
func receive(t testing.TB, ctx context.Context, p driver.Provider, topic, sub string, n int) []driver.Delivery {
	t.Helper()
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return receiveFrom(t, ctx, r, n)
}

func receiveFrom(t testing.TB, ctx context.Context, r driver.Receiver, n int) []driver.Delivery {
	t.Helper()
	var out []driver.Delivery
	buf := make([]driver.Delivery, n)
	for len(out) < n {
		k, err := r.Receive(ctx, buf[:n-len(out)])
		require.NoError(t, err, "receive: have %d of %d", len(out), n)
		out = append(out, buf[:k]...)
	}
	return out
}

func jsonEvent(t testing.TB, i int) *crossbus.Event {
	t.Helper()
	ev := crossbus.NewEvent("com.example.order.placed", "/shop")
	require.NoError(t, crossbus.SetData(&ev, map[string]int{"n": i}))
	return &ev
}

func jsonEvents(t testing.TB, n int) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		out[i] = jsonEvent(t, i)
	}
	return out
}
