package interop_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	cekafka "github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/kafka"
)

// saramaConfig is the SDK's Kafka client configuration. sarama's default
// protocol version (2.1) is kept: its consumer groups do not join kfake at
// 2.8 and later.
func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Producer.Return.Successes = true
	c.Producer.MaxMessageBytes = 2 << 20
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// kafkaSDKReaderAdds are the extensions the SDK's Kafka reader adds to every
// event it reads.
var kafkaSDKReaderAdds = []string{"kafkaoffset", "kafkapartition", "kafkatopic"}

func TestKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "binary", "structured", "out"))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	ctx := testCtx(t)
	p, err := kafka.New(ctx, kafka.Options{Brokers: brokers, AutoCreate: true, CommitInterval: 100 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.FetchMaxWait(300 * time.Millisecond)}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	// One subscription name on both topics, both open at once, as on every
	// other provider: each is a consumer group of its own.
	readers := map[string]driver.Receiver{}
	for _, mode := range []string{"binary", "structured"} {
		r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: mode, Name: "reader"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		readers[mode] = r
	}
	for _, mode := range []string{"binary", "structured"} {
		t.Run("SDK "+mode+" to crossbus", func(t *testing.T) {
			r := readers[mode]
			s, err := cekafka.NewSender(brokers, saramaConfig(), mode)
			require.NoError(t, err)
			defer s.Close(ctx)
			c, err := client.New(s)
			require.NoError(t, err)
			sendCtx := ctx
			x := expect{types: allStrings}
			if mode == "structured" {
				sendCtx = binding.WithForceStructured(ctx)
				x.types = "at:String blob:String count:Integer delta:Integer flag:Boolean link:String note:String ref:String tenant:String"
			}
			fs := fixtures(t)
			sdkSend(t, sendCtx, c, fs)
			for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
				assertSame(t, got, x)
			}
		})
	}

	t.Run("crossbus to SDK", func(t *testing.T) {
		fs := fixtures(t)
		require.NoError(t, p.Publish(ctx, "out", events(fs)))
		consumer := cekafka.NewConsumerFromClient(newSaramaClient(t, brokers), "sdk-reader", "out")
		inbound, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = consumer.OpenInbound(inbound)
		}()
		defer func() { cancel(); <-done }()
		for _, got := range sdkReceive(t, ctx, protocol.Receiver(consumer), len(fs)) {
			assertSame(t, got, expect{types: allStrings, added: kafkaSDKReaderAdds})
		}
	})
}

func newSaramaClient(t *testing.T, brokers []string) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient(brokers, saramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
