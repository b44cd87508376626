package nats_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/benchcpu"
	"github.com/crossbus/crossbus/providers/nats"
)

// benchBatch is how many events each publish call carries in both
// sub-benchmarks.
const benchBatch = 100

var benchPayload = []byte(`{"order":42,"customer":"c-9","items":[{"sku":"a-1","qty":2},{"sku":"b-7","qty":1}],"total":"19.90"}`)

// BenchmarkNATS measures publish -> receive -> ack throughput of CloudEvents
// against one JetStream server on localhost (file storage). "crossbus" goes
// through a Bus and a subscription (one handler per core). "raw" uses nats.go's
// jetstream package directly the way a hand-written CloudEvents service
// would: the same events mapped to ce- headers by hand, async publishes in
// the same batches awaited per batch, a Consume callback that rebuilds each
// event from its headers and acks it.
func BenchmarkNATS(b *testing.B) {
	srv := startServer(b, "")
	ctx := context.Background()
	var round atomic.Int64
	warmUp(b, srv.ClientURL())

	b.Run("crossbus", func(b *testing.B) {
		p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
		if err != nil {
			b.Fatal(err)
		}
		bus, err := crossbus.New(p)
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close(ctx)
		topic := fmt.Sprintf("bench-cb-%d", round.Add(1))
		if err := p.CreateSubscription(ctx, topic, "bench", false); err != nil {
			b.Fatal(err)
		}
		evs := benchEvents(b.N)
		var got atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		sub, err := bus.Subscribe(ctx, topic, "bench", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
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
		nc, err := natsio.Connect(srv.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
		if err != nil {
			b.Fatal(err)
		}
		subject := fmt.Sprintf("bench-raw-%d", round.Add(1))
		stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: subject, Subjects: []string{subject}, Storage: jetstream.FileStorage})
		if err != nil {
			b.Fatal(err)
		}
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverNewPolicy, MaxAckPending: nats.DefaultMaxAckPending})
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if e := rawEvent(m); e.ID() == "" {
				b.Error("message without ce-id")
			}
			_ = m.Ack()
			if got.Add(1) == n {
				close(done)
			}
		}, jetstream.PullMaxMessages(nats.DefaultPrefetch))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		evs := benchEvents(b.N)
		futures := make([]jetstream.PubAckFuture, benchBatch)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		for i := 0; i < b.N; i += benchBatch {
			end := min(i+benchBatch, b.N)
			for j := i; j < end; j++ {
				e := evs[j]
				msg := &natsio.Msg{Subject: subject, Data: e.Data(), Header: natsio.Header{
					"ce-specversion": {e.SpecVersion()}, "ce-id": {e.ID()}, "ce-source": {e.Source()},
					"ce-type": {e.Type()}, "ce-time": {e.Time().Format(time.RFC3339Nano)},
					"ce-datacontenttype": {e.DataContentType()}, "Nats-Msg-Id": {e.ID()},
				}}
				f, err := js.PublishMsgAsync(msg)
				if err != nil {
					b.Fatal(err)
				}
				futures[j-i] = f
			}
			for _, f := range futures[:end-i] {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
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

// rawEvent rebuilds a CloudEvent from a message's headers by hand.
func rawEvent(m jetstream.Msg) *event.Event {
	e := event.New()
	for k, vs := range m.Headers() {
		switch k {
		case "ce-id":
			e.SetID(vs[0])
		case "ce-source":
			e.SetSource(vs[0])
		case "ce-type":
			e.SetType(vs[0])
		case "ce-time":
			if t, err := time.Parse(time.RFC3339Nano, vs[0]); err == nil {
				e.SetTime(t)
			}
		case "ce-datacontenttype":
			e.SetDataContentType(vs[0])
		}
	}
	e.DataEncoded = m.Data()
	return &e
}

// warmUp sends events through the server once, so neither sub-benchmark
// pays for a cold server, client or heap.
func warmUp(b *testing.B, url string) {
	ctx := context.Background()
	p, err := nats.New(ctx, nats.Options{Servers: url, AutoCreate: true})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.CreateSubscription(ctx, "warm-up", "warm-up", false); err != nil {
		b.Fatal(err)
	}
	const n = 10000
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
