package kafka_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/kafka"
	"github.com/crossbus/crossbus/providers/providertest"
)

// startCluster runs an in-process Kafka cluster (franz-go's kfake) for the
// test.
func startCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "events")}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// brokers is what testOptions connects to: a kfake cluster, or the brokers
// of a live cluster in TestConformanceLive.
type brokers interface{ ListenAddrs() []string }

// testOptions are the provider options the tests use: fast commits, a
// strict (no auto-create) namespace, short fetch waits (kfake answers a
// waiting fetch only when its wait ends in some cases, such as right after a
// group rebalance) and frequent heartbeats, so rebalances start quickly.
func testOptions(c brokers) kafka.Options {
	return kafka.Options{Brokers: c.ListenAddrs(), CommitInterval: 100 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.FetchMaxWait(300 * time.Millisecond), kgo.HeartbeatInterval(200 * time.Millisecond)}}
}

// harness runs the suite against one kfake cluster; every NewProvider is a
// separate client with AutoCreate off.
type harness struct {
	c     brokers
	admin *kafka.Provider
}

func newHarness(t *testing.T, c brokers) *harness {
	admin, err := kafka.New(context.Background(), testOptions(c))
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	return &harness{c: c, admin: admin}
}

func (h *harness) NewProvider(ctx context.Context) (driver.Provider, error) {
	return kafka.New(ctx, testOptions(h.c))
}

func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	return h.admin.CreateTopic(ctx, topic)
}

func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, _ providertest.SubscriptionOptions) error {
	return h.admin.CreateSubscription(ctx, topic, sub)
}

// DeleteSubscription deletes the subscription's topic. A Kafka subscription
// is a consumer group, and the brokers refuse to delete a group that has
// members (NON_EMPTY_GROUP), so the entity deleted under the running
// consumer is its topic: the consumer's fetches fail with
// UNKNOWN_TOPIC_OR_PARTITION, the topic's metadata confirms it is gone, and
// the receiver reports crossbus.ErrTopicNotFound.
func (h *harness) DeleteSubscription(ctx context.Context, topic, _ string) error {
	resp, err := h.adm().DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	return err
}

// PublishRaw produces payload to the topic as a record with no headers.
func (h *harness) PublishRaw(ctx context.Context, topic string, payload []byte) error {
	var cl *kgo.Client
	if !h.admin.As(&cl) {
		return errors.New("no kgo client")
	}
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: payload}).FirstErr()
}

func (h *harness) adm() *kadm.Client {
	var adm *kadm.Client
	h.admin.As(&adm)
	return adm
}

var (
	_ providertest.SubscriptionDeleter = (*harness)(nil)
	_ providertest.RawPublisher        = (*harness)(nil)
)

// AsTarget names the native client As must reach.
func (h *harness) AsTarget() any { return new(*kgo.Client) }

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: time.Second, Timeout: 30 * time.Second}
}

func TestConformance(t *testing.T) {
	c := startCluster(t)
	providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, c) })
}

// liveBrokers are the brokers of an external cluster.
type liveBrokers []string

func (l liveBrokers) ListenAddrs() []string { return l }

// TestConformanceLive runs the suite against an external Kafka cluster when
// CROSSBUS_KAFKA_BROKERS lists its brokers (host:port, comma-separated).
func TestConformanceLive(t *testing.T) {
	list := os.Getenv("CROSSBUS_KAFKA_BROKERS")
	if list == "" {
		t.Skip("CROSSBUS_KAFKA_BROKERS is not set: no external Kafka cluster to test against")
	}
	providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, liveBrokers(strings.Split(list, ","))) })
}
