package kafka_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/benchcpu"
	"github.com/crossbus/crossbus/providers/kafka"
)

// benchBatch is how many events each publish call carries in both
// sub-benchmarks.
const benchBatch = 100

var benchPayload = []byte(`{"order":42,"customer":"c-9","items":[{"sku":"a-1","qty":2},{"sku":"b-7","qty":1}],"total":"19.90"}`)

// BenchmarkKafka measures publish -> receive -> ack throughput of CloudEvents
// against an in-process kfake cluster (3 partitions). "crossbus" goes through
// a Bus and a subscription (one handler per core, commits of settled offsets every
// second). "raw" uses franz-go directly the way a hand-written CloudEvents
// service would: the same events mapped to ce_ headers by hand, ProduceSync
// in the same batches, one group consumer that rebuilds each event from its
// headers and marks it for commit.
func BenchmarkKafka(b *testing.B) {
	c := startCluster(b)
	ctx := context.Background()
	var round atomic.Int64
	warmUp(b, c)

	b.Run("crossbus", func(b *testing.B) {
		p, err := kafka.New(ctx, kafka.Options{Brokers: c.ListenAddrs()})
		if err != nil {
			b.Fatal(err)
		}
		bus, err := crossbus.New(p)
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close(ctx)
		topic := fmt.Sprintf("bench-cb-%d", round.Add(1))
		if err := p.CreateSubscription(ctx, topic, topic); err != nil {
			b.Fatal(err)
		}
		evs := benchEvents(b.N)
		var got atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		sub, err := bus.Subscribe(ctx, topic, topic, crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			if got.Add(1) == n {
				close(done)
			}
			return nil
		}), crossbus.WithConcurrency(runtime.GOMAXPROCS(0)), crossbus.WithPrefetch(64)) // the handler does no I/O: one worker per core
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		for i := 0; i < b.N; i += benchBatch {
			if err := bus.Publish(ctx, topic, evs[i:min(i+benchBatch, b.N)]...); err != nil {
				b.Fatal(err)
			}
		}
		waitBench(b, done, &got)
		b.StopTimer()
		cpu.Report(b, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		_ = sub.Close(ctx)
	})

	b.Run("raw", func(b *testing.B) {
		admin, err := kafka.New(ctx, kafka.Options{Brokers: c.ListenAddrs()})
		if err != nil {
			b.Fatal(err)
		}
		defer admin.Close(ctx)
		topic := fmt.Sprintf("bench-raw-%d", round.Add(1))
		if err := admin.CreateSubscription(ctx, topic, topic); err != nil {
			b.Fatal(err)
		}
		prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			b.Fatal(err)
		}
		defer prod.Close()
		cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic),
			kgo.AutoCommitMarks(), kgo.AutoCommitInterval(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		defer cons.Close()
		var got atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			for {
				fs := cons.PollRecords(pctx, 256)
				if pctx.Err() != nil {
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					if e := rawEvent(r); e.ID() == "" {
						b.Error("record without ce_id")
					}
					cons.MarkCommitRecords(r)
					if got.Add(1) == n {
						close(done)
					}
				})
			}
		}()
		evs := benchEvents(b.N)
		recs := make([]*kgo.Record, 0, benchBatch)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		for i := 0; i < b.N; i += benchBatch {
			recs = recs[:0]
			for _, e := range evs[i:min(i+benchBatch, b.N)] {
				recs = append(recs, &kgo.Record{Topic: topic, Value: e.Data(), Headers: []kgo.RecordHeader{
					{Key: "ce_specversion", Value: []byte(e.SpecVersion())}, {Key: "ce_id", Value: []byte(e.ID())},
					{Key: "ce_source", Value: []byte(e.Source())}, {Key: "ce_type", Value: []byte(e.Type())},
					{Key: "ce_time", Value: []byte(e.Time().Format(time.RFC3339Nano))},
					{Key: "content-type", Value: []byte(e.DataContentType())},
				}})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		waitBench(b, done, &got)
		b.StopTimer()
		cpu.Report(b, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

func waitBench(b *testing.B, done <-chan struct{}, got *atomic.Int64) {
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("received %d of %d", got.Load(), b.N)
	}
}

func benchEvents(n int) []*crossbus.Event {
	evs := make([]*crossbus.Event, n)
	for i := range evs {
		e := crossbus.NewEvent("com.example.order.placed", "/bench")
		e.SetDataContentType("application/json")
		_ = crossbus.SetData(&e, benchPayload)
		evs[i] = &e
	}
	return evs
}

// rawEvent rebuilds a CloudEvent from a record's headers by hand.
func rawEvent(r *kgo.Record) *event.Event {
	e := event.New()
	for _, h := range r.Headers {
		switch h.Key {
		case "ce_id":
			e.SetID(string(h.Value))
		case "ce_source":
			e.SetSource(string(h.Value))
		case "ce_type":
			e.SetType(string(h.Value))
		case "ce_time":
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				e.SetTime(t)
			}
		case "content-type":
			e.SetDataContentType(string(h.Value))
		}
	}
	e.DataEncoded = r.Value
	return &e
}

// warmUp sends events through the cluster once, so neither sub-benchmark
// pays for a cold broker, client or heap.
func warmUp(b *testing.B, c interface{ ListenAddrs() []string }) {
	ctx := context.Background()
	p, err := kafka.New(ctx, kafka.Options{Brokers: c.ListenAddrs()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.CreateSubscription(ctx, "warm-up", "warm-up"); err != nil {
		b.Fatal(err)
	}
	const n = 20000
	evs := benchEvents(n)
	for i := 0; i < n; i += benchBatch {
		if err := p.Publish(ctx, "warm-up", evs[i:i+benchBatch]); err != nil {
			b.Fatal(err)
		}
	}
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "warm-up", Name: "warm-up"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(ctx)
	buf := make([]driver.Delivery, 256)
	for got := 0; got < n; {
		k, err := r.Receive(ctx, buf)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range buf[:k] {
			_ = d.Ack(ctx)
		}
		got += k
	}
}
