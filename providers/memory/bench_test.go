package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/benchcpu"
	"github.com/crossbus/crossbus/providers/memory"
)

// BenchmarkPublishHandle measures publish -> handle -> ack through the whole
// portable layer on the memory provider. events/s counts handled events; the
// p50/p99 metrics are publish-to-handler latencies of a sample of events.
func BenchmarkPublishHandle(b *testing.B) {
	b.Run("subscriptions=1", func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1}) })
	b.Run("subscriptions=4", func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 4}) })
	b.Run("ordered-keys=100", func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1, ordered: true, keys: 100}) })
	b.Run("idempotency", func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1, idempotent: true}) })
	b.Run("filter", func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1, filter: true}) })
}

// benchRoute is what a BenchmarkPublishHandle sub-benchmark measures.
type benchRoute struct {
	subs       int
	ordered    bool
	keys       int  // partition keys (ordered)
	idempotent bool // WithIdempotency on the memory store
	filter     bool // a type filter that matches every event
	workers    int  // WithConcurrency; 0 is 2 (8 when ordered)
	dataSize   int  // bytes of data per event; 0 is a 7-byte JSON object
	window     int  // most events unhandled per subscription; 0 is 8192
}

// BenchmarkScale shows how the cost per event grows with the number of
// subscriptions of a topic, a route's concurrency, the event's size and the
// backlog depth (how many events the publisher keeps unhandled). Its
// cpu-ns/event figures are plotted by scripts/plot-scale (see
// BENCHMARKS.md).
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("subscriptions=%d", n), func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: n}) })
	}
	for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", n), func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1, workers: n}) })
	}
	for _, n := range []int{100, 1024, 16 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1, dataSize: n}) })
	}
	for _, n := range []int{64, 1024, 8192, 65536} {
		b.Run(fmt.Sprintf("backlog=%d", n), func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1, window: n}) })
	}
}

// BenchmarkTracing is BenchmarkPublishHandle/subscriptions=1 with tracing off
// (the global no-op provider) and on (the OpenTelemetry SDK sampling every
// event, batching spans to an exporter that discards them).
func BenchmarkTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchPublishHandle(b, benchRoute{subs: 1}) })
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(discard{}))
		defer tp.Shutdown(context.Background())
		benchPublishHandle(b, benchRoute{subs: 1}, crossbus.WithTracerProvider(tp))
	})
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

func benchPublishHandle(b *testing.B, rt benchRoute, opts ...crossbus.BusOption) {
	subs, ordered, keys := rt.subs, rt.ordered, rt.keys
	ctx := context.Background()
	p := memory.New(memory.Options{AutoCreate: true})
	bus, err := crossbus.New(p, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)

	const batch = 100
	n := b.N
	// The publisher keeps at most window events unhandled, so latency is
	// measured under load rather than as the depth of an unbounded backlog.
	window := 8192
	if rt.window > 0 {
		window = rt.window
	}
	data := []byte(`{"n":1}`)
	if rt.dataSize > 0 {
		data = []byte(`"` + strings.Repeat("x", rt.dataSize-2) + `"`)
	}
	// Events are built outside the timer and reused: a ring of 4 windows, so
	// an event is published again only after its previous publication was
	// handled (Publish copies events; the ring keeps the benchmark's own
	// live heap small, so garbage collection measures the bus, not the
	// setup). Each publication gets a new id, its number, as a producer's
	// new event would (idempotent consumers key on it), and a handler
	// (which gets a copy) finds the slot from it without a lookup.
	ring := (4*window/batch + 1) * batch // a multiple of batch
	slots := min(n, ring)
	store := make([]crossbus.Event, slots)
	evs := make([]*crossbus.Event, slots)
	for i := range evs {
		store[i] = crossbus.NewEvent("com.example.bench", "/bench")
		e := &store[i]
		e.SetID(strconv.Itoa(i))
		e.SetData("application/json", data)
		if keys > 0 {
			crossbus.SetPartitionKey(e, fmt.Sprintf("k%d", i%keys))
		}
		evs[i] = e
	}
	// Latency sample: publish time of every 64th slot.
	sent := make([]int64, slots)
	var lat []time.Duration
	var latMu sync.Mutex

	var handled atomic.Int64
	total := int64(n * subs)
	done := make(chan struct{})
	for s := 0; s < subs; s++ {
		opts := []crossbus.RouteOption{crossbus.WithPrefetch(64), crossbus.WithConcurrency(2)}
		if ordered {
			opts = append(opts, crossbus.WithOrdering(), crossbus.WithConcurrency(8))
		}
		if rt.workers > 0 {
			opts = append(opts, crossbus.WithConcurrency(rt.workers))
		}
		if rt.idempotent {
			opts = append(opts, crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
		}
		if rt.filter {
			opts = append(opts, crossbus.WithFilter(crossbus.TypeIs("com.example.bench")))
		}
		_, err := bus.Subscribe(ctx, "bench", fmt.Sprintf("sub-%d", s), crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			if i, _ := strconv.Atoi(e.ID()); s == 0 && i%slots%64 == 0 {
				d := time.Duration(time.Now().UnixNano() - atomic.LoadInt64(&sent[i%slots]))
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}
			if handled.Add(1) == total {
				close(done)
			}
			return nil
		}), opts...)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	runtime.GC() // the setup's garbage is not the measured work's
	b.ResetTimer()
	cpu := benchcpu.Start()
	for i := 0; i < n; i += batch {
		for int64(i*subs)-handled.Load() > int64(window*subs) {
			time.Sleep(20 * time.Microsecond) // wait without spinning: CPU time is measured
		}
		end := min(i+batch, n)
		from, to := i%slots, (end-1)%slots+1 // batch divides the ring
		now := time.Now().UnixNano()
		for j := from; j < to; j++ {
			evs[j].SetID(strconv.Itoa(i + j - from))
		}
		for j := from; j < to; j += 64 - j%64 {
			atomic.StoreInt64(&sent[j], now)
		}
		if err := bus.Publish(ctx, "bench", evs[from:to]...); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	if used, ok := cpu.Used(); ok {
		b.ReportMetric(float64(used.Nanoseconds())/float64(n), "cpu-ns/event")
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
