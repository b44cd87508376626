package nats_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/nats"
)

func TestOptionsFromURL(t *testing.T) {
	u, err := url.Parse("nats://user:pw@a:4222,b:4223?autocreate=false&subjectprefix=app.&streamprefix=APP_&storage=memory&retention=interest&replicas=3&maxage=24h&maxbytes=1000&dupwindow=5m&ackwait=10s&maxdeliver=20&maxackpending=50&prefetch=16&pinnedttl=1m&maxeventbytes=1000&name=svc")
	require.NoError(t, err)
	o, err := nats.OptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, "nats://user:pw@a:4222,nats://user:pw@b:4223", o.Servers)
	assert.False(t, o.AutoCreate)
	assert.Equal(t, "app.", o.SubjectPrefix)
	assert.Equal(t, "APP_", o.StreamPrefix)
	assert.Equal(t, jetstream.MemoryStorage, o.Storage)
	assert.Equal(t, jetstream.InterestPolicy, o.Retention)
	assert.Equal(t, 3, o.Replicas)
	assert.Equal(t, 24*time.Hour, o.MaxAge)
	assert.Equal(t, int64(1000), o.MaxBytes)
	assert.Equal(t, 5*time.Minute, o.DuplicateWindow)
	assert.Equal(t, 10*time.Second, o.AckWait)
	assert.Equal(t, 20, o.MaxDeliver)
	assert.Equal(t, 50, o.MaxAckPending)
	assert.Equal(t, 16, o.Prefetch)
	assert.Equal(t, time.Minute, o.PinnedTTL)
	assert.Equal(t, 1000, o.MaxEventBytes)
	assert.Len(t, o.ConnOptions, 1)
	assert.Equal(t, nats.HeaderValuesVerbatim, o.HeaderValues, "verbatim header values by default")

	u, _ = url.Parse("nats://a:4222?headervalues=percent")
	o, err = nats.OptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, nats.HeaderValuesPercent, o.HeaderValues)
	assert.Equal(t, "percent", o.HeaderValues.String())
	u, _ = url.Parse("nats://a:4222?headervalues=quoted")
	_, err = nats.OptionsFromURL(u)
	require.ErrorIs(t, err, crossbus.ErrInvalidURL)

	u, _ = url.Parse("nats+embedded:///var/lib/app/bus?listen=127.0.0.1:4222&sync=always")
	o, err = nats.OptionsFromURL(u)
	require.NoError(t, err)
	assert.True(t, o.EmbeddedSyncAlways)
	assert.Equal(t, "/var/lib/app/bus", o.EmbeddedDir)
	assert.Equal(t, "127.0.0.1:4222", o.EmbeddedListen)
	assert.True(t, o.AutoCreate, "URLs create streams and consumers on demand by default")
}

func TestBadOptionsNameTheField(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		o    nats.Options
		want string
	}{
		{nats.Options{}, "Servers, Conn or EmbeddedDir"},
		{nats.Options{Servers: "nats://x", Prefetch: -1}, "Prefetch"},
		{nats.Options{Servers: "nats://x", SubjectPrefix: "a.*."}, "SubjectPrefix"},
		{nats.Options{Servers: "nats://x", EmbeddedListen: ":4222"}, "EmbeddedListen needs EmbeddedDir"},
		{nats.Options{EmbeddedDir: "relative/dir"}, "absolute"},
		{nats.Options{Servers: "nats://x", HeaderValues: 7}, "HeaderValues"},
	} {
		_, err := nats.New(ctx, tc.o)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
	for _, bad := range []string{"nats://", "nats://h:1?storage=tape", "nats://h:1?listen=:1", "nats://h:1?sync=always", "nats+embedded:///x?sync=sometimes", "nats://h:1?maxdeliver=x"} {
		_, err := crossbus.Open(ctx, bad)
		assert.ErrorIs(t, err, crossbus.ErrInvalidURL, bad)
	}
}

func TestOpenByURLAndMissingEntities(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, srv.ClientURL()+"?autocreate=false")
	require.NoError(t, err)
	defer bus.Close(ctx)
	caps := bus.Capabilities()
	assert.False(t, caps.Ordering)
	assert.True(t, caps.NativeDeadLetter)
	assert.True(t, caps.DelayedRedelivery)
	assert.True(t, caps.LeaseExtension)
	assert.Equal(t, 1<<20-8<<10, caps.MaxEventBytes, "the server's max payload less room for headers")

	e := crossbus.NewEvent("t", "/s")
	assert.ErrorIs(t, bus.Publish(ctx, "nope", &e), crossbus.ErrTopicNotFound)
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })
	_, err = bus.Subscribe(ctx, "nope", "sub", h)
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)

	var p *nats.Provider
	require.True(t, bus.As(&p))
	require.NoError(t, p.CreateTopic(ctx, "orders"))
	_, err = bus.Subscribe(ctx, "orders", "never-created", h)
	assert.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
	err = bus.Publish(ctx, "orders.*", &e)
	assert.ErrorIs(t, err, crossbus.ErrInvalidName, "the portable layer refuses the name first")
	err = p.Publish(ctx, "orders.*", []*crossbus.Event{&e})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "the provider itself refuses a wildcard subject")
	assert.ErrorContains(t, err, "wildcard")

	require.NoError(t, bus.Close(ctx))
	assert.ErrorIs(t, p.Publish(ctx, "orders", []*crossbus.Event{&e}), crossbus.ErrClosed)
}

// TestTopicsWithDotsAndExistingStreams maps topics onto subjects: a topic
// with dots gets a stream of its own, and a topic whose subject an existing
// stream already captures is published to that stream.
func TestTopicsWithDotsAndExistingStreams(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
	require.NoError(t, err)
	defer p.Close(ctx)
	var js jetstream.JetStream
	require.True(t, p.As(&js))
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "LEGACY", Subjects: []string{"legacy.>"}})
	require.NoError(t, err)

	for _, topic := range []string{"orders.created", "orders_created", "legacy.orders"} {
		require.NoError(t, p.CreateSubscription(ctx, topic, "sub", false))
		e := crossbus.NewEvent("t", "/s")
		require.NoError(t, p.Publish(ctx, topic, []*crossbus.Event{&e}))
	}
	info, err := js.Stream(ctx, "LEGACY")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), info.CachedInfo().State.Msgs, "legacy.orders went to the stream that captures it")
	names := map[string]bool{}
	for n := range js.StreamNames(ctx).Name() {
		names[n] = true
	}
	assert.Len(t, names, 3, "orders.created and orders_created got distinct streams")
	assert.True(t, names["orders_created"])
}
