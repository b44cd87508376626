package servicebus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/benchcpu"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

const (
	benchWorkers  = 8   // handlers at once (crossbus's default concurrency)
	benchPrefetch = 8   // messages per receive call (crossbus's default prefetch)
	benchBatch    = 100 // events per publish call
)

// BenchmarkServiceBus measures send -> receive -> complete through the sbtest
// broker: "crossbus" through the bus (mapping, batching, the portable
// delivery engine), "raw" with the SDK alone doing the same work with the
// same concurrency and the same wire messages.
func BenchmarkServiceBus(b *testing.B) {
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(b, err)
	defer srv.Close()
	payload := []byte(`{"order":42,"customer":"c-9","items":["a","b","c"],"total":99.5}`)

	b.Run("crossbus", func(b *testing.B) {
		topic, sub := benchEntities(b, srv)
		ctx := context.Background()
		p, err := servicebus.New(ctx, servicebus.Options{ConnectionString: srv.ConnectionString()})
		require.NoError(b, err)
		bus, err := crossbus.New(p)
		require.NoError(b, err)
		defer bus.Close(ctx)
		var handled atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		_, err = bus.Subscribe(ctx, topic, sub, crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			if handled.Add(1) == n {
				close(done)
			}
			return nil
		}), crossbus.WithConcurrency(benchWorkers), crossbus.WithPrefetch(benchPrefetch))
		require.NoError(b, err)
		events := make([]*crossbus.Event, b.N)
		for i := range events {
			e := crossbus.NewEvent("com.example.order.placed", "/bench")
			e.SetDataContentType("application/json")
			e.DataEncoded = payload
			events[i] = &e
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		for i := 0; i < len(events); i += benchBatch {
			require.NoError(b, bus.Publish(ctx, topic, events[i:min(i+benchBatch, len(events))]...))
		}
		waitBench(b, done, &handled)
		cpu.Report(b, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("raw", func(b *testing.B) {
		topic, sub := benchEntities(b, srv)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
		require.NoError(b, err)
		defer client.Close(context.Background())
		sender, err := client.NewSender(topic, nil)
		require.NoError(b, err)
		receiver, err := client.NewReceiverForSubscription(topic, sub, nil)
		require.NoError(b, err)
		var handled atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		var turn sync.Mutex // ReceiveMessages may not run concurrently
		var wg sync.WaitGroup
		for w := 0; w < benchWorkers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					turn.Lock()
					msgs, err := receiver.ReceiveMessages(ctx, benchPrefetch, nil)
					turn.Unlock()
					if err != nil {
						return
					}
					for _, m := range msgs {
						if err := receiver.CompleteMessage(ctx, m, nil); err == nil && handled.Add(1) == n {
							close(done)
						}
					}
				}
			}()
		}
		msgs := make([]*azservicebus.Message, b.N)
		for i := range msgs {
			e := crossbus.NewEvent("com.example.order.placed", "/bench")
			id, ct := e.ID(), "application/json"
			msgs[i] = &azservicebus.Message{MessageID: &id, ContentType: &ct, Body: payload, ApplicationProperties: map[string]any{
				"cloudEvents_specversion": "1.0", "cloudEvents_id": id, "cloudEvents_source": "/bench",
				"cloudEvents_type": "com.example.order.placed", "cloudEvents_time": e.Time().Format(time.RFC3339Nano)}}
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		for i := 0; i < len(msgs); i += benchBatch {
			batch, err := sender.NewMessageBatch(ctx, nil)
			require.NoError(b, err)
			for _, m := range msgs[i:min(i+benchBatch, len(msgs))] {
				require.NoError(b, batch.AddMessage(m, nil))
			}
			require.NoError(b, sender.SendMessageBatch(ctx, batch, nil))
		}
		waitBench(b, done, &handled)
		cpu.Report(b, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.StopTimer()
		cancel()
		wg.Wait()
	})
}

var benchSeq atomic.Int64

func benchEntities(b *testing.B, srv *sbtest.Server) (topic, sub string) {
	k := benchSeq.Add(1)
	topic, sub = fmt.Sprintf("bench-%d", k), "sub"
	require.NoError(b, srv.CreateTopic(topic, sbtest.EntityOptions{}))
	require.NoError(b, srv.CreateSubscription(topic, sub, sbtest.EntityOptions{}))
	return topic, sub
}

func waitBench(b *testing.B, done <-chan struct{}, handled *atomic.Int64) {
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("handled %d of %d events", handled.Load(), b.N)
	}
}
