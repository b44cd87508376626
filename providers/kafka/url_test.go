package kafka_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/kafka"
)

func TestOptionsFromURL(t *testing.T) {
	u, err := url.Parse("kafka://b1:9092,b2:9093?autocreate=false&partitions=6&replication=3&commitinterval=250ms&prefetch=64&revoketimeout=5s&maxeventbytes=1000&clientid=svc")
	require.NoError(t, err)
	o, err := kafka.OptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, []string{"b1:9092", "b2:9093"}, o.Brokers)
	assert.False(t, o.AutoCreate)
	assert.Equal(t, int32(6), o.Partitions)
	assert.Equal(t, int16(3), o.ReplicationFactor)
	assert.Equal(t, 250*time.Millisecond, o.CommitInterval)
	assert.Equal(t, 64, o.Prefetch)
	assert.Equal(t, 5*time.Second, o.RevokeTimeout)
	assert.Equal(t, 1000, o.MaxEventBytes)
	assert.Len(t, o.ClientOpts, 1)

	u, _ = url.Parse("kafka://b1:9092?group=orders/billing=billing-v1&group=audit=legacy-audit")
	o, err = kafka.OptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"orders/billing": "billing-v1", "audit": "legacy-audit"}, o.Groups)
	p, err := kafka.New(context.Background(), kafka.Options{Brokers: startCluster(t).ListenAddrs(), Groups: o.Groups})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	assert.Equal(t, "billing-v1", p.GroupID("orders", "billing"), "topic and subscription")
	assert.Equal(t, "payments/billing", p.GroupID("payments", "billing"), "not mapped on another topic")
	assert.Equal(t, "legacy-audit", p.GroupID("payments", "audit"), "a bare subscription is mapped on every topic")

	u, _ = url.Parse("kafka://b1:9092")
	o, err = kafka.OptionsFromURL(u)
	require.NoError(t, err)
	assert.True(t, o.AutoCreate, "URLs create topics and groups on demand by default")
}

func TestBadURLsNameTheProblem(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"kafka://", "needs a broker"},
		{"kafka://b:9092/path", "no path"},
		{"kafka://b:9092?bogus=1", `unknown kafka URL parameter "bogus"`},
		{"kafka://b:9092?partitions=many", "partitions"},
		{"kafka://b:9092?commitinterval=often", "commitinterval"},
		{"kafka://b:9092?group=billing", "group"},
		{"kafka://b:9092?group=billing=", "group"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := crossbus.Open(ctx, tc.url)
			require.Error(t, err)
			assert.ErrorIs(t, err, crossbus.ErrInvalidURL)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := kafka.New(ctx, kafka.Options{})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = kafka.New(ctx, kafka.Options{Brokers: []string{"b:1"}, Prefetch: -1})
	assert.ErrorContains(t, err, "Prefetch")
	_, err = kafka.New(ctx, kafka.Options{Brokers: []string{"b:1"}, Groups: map[string]string{"billing": ""}})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "Groups")
}

func TestOpenByURLAndMissingEntities(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "kafka://"+c.ListenAddrs()[0]+"?autocreate=false")
	require.NoError(t, err)
	defer bus.Close(ctx)
	caps := bus.Capabilities()
	assert.True(t, caps.Ordering)
	assert.True(t, caps.NativeDeadLetter)
	assert.True(t, caps.DelayedRedelivery)
	assert.False(t, caps.LeaseExtension)

	err = bus.Publish(ctx, "nope", ptr(crossbus.NewEvent("topic", "/s")))
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
	_, err = bus.Subscribe(ctx, "nope", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }))
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
	_, err = bus.Subscribe(ctx, "events", "never-created", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }))
	assert.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound, "a group without offsets is not a subscription when AutoCreate is off")
	err = bus.Publish(ctx, "bad topic name", ptr(crossbus.NewEvent("topic", "/s")))
	assert.ErrorIs(t, err, crossbus.ErrInvalidName, "the portable layer refuses the name first")

	var p *kafka.Provider
	require.True(t, bus.As(&p))
	err = p.Publish(ctx, "bad topic name", []*crossbus.Event{ptr(crossbus.NewEvent("topic", "/s"))})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "Kafka itself refuses the topic name")
	assert.ErrorContains(t, err, "bad topic name")
	require.NoError(t, bus.Close(ctx))
	err = p.Publish(ctx, "events", []*crossbus.Event{ptr(crossbus.NewEvent("topic", "/s"))})
	assert.ErrorIs(t, err, crossbus.ErrClosed)
}

func ptr[T any](v T) *T { return &v }
