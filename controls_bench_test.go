package crossbus_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

// BenchmarkBatchHandler measures publish -> batch handler -> ack on the
// memory provider for batch sizes 1, 10 and 100. events/s counts handled
// events; the handler does no work, so the numbers show the batch engine's
// own cost per event.
func BenchmarkBatchHandler(b *testing.B) {
	for _, size := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchBatchHandler(b, size) })
	}
}

func benchBatchHandler(b *testing.B, size int) {
	ctx := context.Background()
	bus, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	n := b.N
	evs := make([]*crossbus.Event, n)
	for i := range evs {
		e := crossbus.NewEvent("com.example.bench", "/bench")
		e.SetData("application/json", []byte(`{"n":1}`))
		evs[i] = &e
	}
	var handled atomic.Int64
	done := make(chan struct{})
	_, err = bus.SubscribeBatch(ctx, "bench", "batch", crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
		if handled.Add(int64(len(events))) == int64(n) {
			close(done)
		}
		return nil
	}), crossbus.WithBatch(size, time.Millisecond), crossbus.WithConcurrency(2))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	const chunk, window = 100, 8192
	for i := 0; i < n; i += chunk {
		for int64(i)-handled.Load() > window {
			runtime.Gosched()
		}
		if err := bus.Publish(ctx, "bench", evs[i:min(i+chunk, n)]...); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRateLimit measures the rate limiter's accuracy on a route with the
// real clock: events/s is the achieved rate at which a backlog of b.N events
// is handled once the initial burst is spent, configured-events/s the limit.
// The burst is 10ms worth of tokens (at least 10), so that scheduling delays
// of a loaded machine are absorbed as a token bucket is meant to.
func BenchmarkRateLimit(b *testing.B) {
	for _, rate := range []float64{100, 1000, 10000} {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) { benchRateLimit(b, rate) })
	}
}

func benchRateLimit(b *testing.B, rate float64) {
	ctx := context.Background()
	bus, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	burst := max(10, int(rate/100))
	n := b.N + burst // the burst goes out at once; b.N events are paced
	evs := make([]*crossbus.Event, n)
	for i := range evs {
		e := crossbus.NewEvent("com.example.bench", "/bench")
		evs[i] = &e
	}
	var handled atomic.Int64
	done := make(chan struct{})
	var paced time.Time // when the burst was spent
	_, err = bus.Subscribe(ctx, "bench", "limited", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		switch handled.Add(1) {
		case int64(burst):
			paced = time.Now()
		case int64(n):
			close(done)
		}
		return nil
	}), crossbus.WithRateLimit(rate, burst), crossbus.WithConcurrency(4), crossbus.WithPrefetch(8))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := bus.Publish(ctx, "bench", evs...); err != nil {
		b.Fatal(err)
	}
	<-done
	elapsed := time.Since(paced)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(rate, "configured-events/s")
}
