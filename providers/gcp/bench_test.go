package gcp_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/benchcpu"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// Both sub-benchmarks move b.N events through pstest: publish them in
// batches of benchBatch (waiting for each batch to be stored), then pull
// with benchWorkers concurrent pullers of up to benchPull messages and
// acknowledge every one; the time covers both phases. The raw client sends
// the same bytes (data and ce- attributes) that crossbus puts on the wire,
// so the difference is crossbus's own work: encoding, decoding, the
// delivery pipeline and settlement batching.
//
// Consumers start once every event is stored because pstest answers a pull
// of an empty subscription only after 500ms: consumers that catch up with
// the publisher stall at random, and the benchmark would time the stalls.
const (
	benchBatch   = 100
	benchWorkers = 8
	benchPull    = 100
)

func BenchmarkPubSub(b *testing.B) {
	b.Run("crossbus", benchCrossbus)
	b.Run("raw", benchRaw)
}

func benchEvent(i int) *crossbus.Event {
	e := crossbus.NewEvent("com.example.bench", "/bench")
	_ = crossbus.SetData(&e, map[string]int{"n": i})
	return &e
}

func benchSetup(b *testing.B) *gcp.Provider {
	srv := newServer(b)
	p := newProvider(b, srv)
	ctx := context.Background()
	require.NoError(b, p.CreateTopic(ctx, "bench"))
	require.NoError(b, p.CreateTopic(ctx, "bench-dead"))
	require.NoError(b, p.CreateSubscription(ctx, "bench", "bench-sub", gcp.SubscriptionConfig{}))
	return p
}

// counter closes done once n events are counted.
type counter struct {
	n     int64
	count atomic.Int64
	done  chan struct{}
	once  sync.Once
}

func newCounter(n int) *counter { return &counter{n: int64(n), done: make(chan struct{})} }

func (c *counter) add(k int) {
	if c.count.Add(int64(k)) >= c.n {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *counter) wait(b *testing.B) {
	select {
	case <-c.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events went through", c.count.Load(), c.n)
	}
}

func benchCrossbus(b *testing.B) {
	p := benchSetup(b)
	bus, err := crossbus.New(p)
	require.NoError(b, err)
	events := make([]*crossbus.Event, b.N)
	for i := range events {
		events[i] = benchEvent(i)
	}
	handled := newCounter(b.N)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := benchcpu.Start()
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBatch {
		if err := bus.Publish(ctx, "bench", events[i:min(i+benchBatch, b.N)]...); err != nil {
			b.Fatal(err)
		}
	}
	s, err := bus.Subscribe(ctx, "bench", "bench-sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		handled.add(1)
		return nil
	}), crossbus.WithConcurrency(benchWorkers), crossbus.WithPrefetch(benchPull), crossbus.WithDeadLetterTopic("bench-dead"))
	require.NoError(b, err)
	handled.wait(b)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(b, s.Close(cctx)) // sends the queued acknowledgements
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cpu.Report(b, b.N)
	require.NoError(b, bus.Close(cctx))
}

func benchRaw(b *testing.B) {
	p := benchSetup(b)
	c := p.Client()
	// The wire form crossbus sends, built before timing.
	msgs := make([]*pubsub.Message, b.N)
	for i := range msgs {
		m, _, err := pubsubwire.Encode(benchEvent(i), pubsubwire.Binary)
		require.NoError(b, err)
		msgs[i] = &pubsub.Message{Data: m.Data, Attributes: m.Attributes}
	}
	pub := c.Publisher("bench")
	defer pub.Stop()
	sub := fmt.Sprintf("projects/%s/subscriptions/bench-sub", project)
	acked := newCounter(b.N)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	results := make([]*pubsub.PublishResult, 0, benchBatch)
	b.ReportAllocs()
	cpu := benchcpu.Start()
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBatch {
		results = results[:0]
		for _, m := range msgs[i:min(i+benchBatch, b.N)] {
			results = append(results, pub.Publish(ctx, m))
		}
		for _, r := range results {
			if _, err := r.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	for w := 0; w < benchWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := c.SubscriptionAdminClient.Pull(ctx, &pb.PullRequest{Subscription: sub, MaxMessages: benchPull})
				if err != nil || len(resp.ReceivedMessages) == 0 {
					continue
				}
				ids := make([]string, len(resp.ReceivedMessages))
				for i, m := range resp.ReceivedMessages {
					ids[i] = m.AckId
				}
				if err := c.SubscriptionAdminClient.Acknowledge(ctx, &pb.AcknowledgeRequest{Subscription: sub, AckIds: ids}); err == nil {
					acked.add(len(ids))
				}
			}
		}()
	}
	acked.wait(b)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cpu.Report(b, b.N)
	cancel()
	wg.Wait()
}
