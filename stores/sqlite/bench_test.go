package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// benchEvent is a typical small domain event: ~100 bytes of JSON data.
func benchEvent(i int) *crossbus.Event {
	e := crossbus.NewEvent("com.example.payout.credited", "/marketplace/payouts")
	_ = crossbus.SetData(&e, map[string]any{"seller": "seller-42", "amount": 1250 + i%100, "currency": "EUR", "order": fmt.Sprintf("order-%d", i)})
	return &e
}

// BenchmarkSQLiteAppend measures appends to the sqlite event store: one
// event per Append (one transaction each) and batches of 100 events per
// Append, across 100 streams.
func BenchmarkSQLiteAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		name := "single"
		if batch > 1 {
			name = fmt.Sprintf("batch=%d", batch)
		}
		b.Run(name, func(b *testing.B) {
			db := openDB(b, sqlite.Options{})
			ctx := context.Background()
			var pool []*crossbus.Event // events not yet appended, made outside the timer
			b.ReportAllocs()
			n := 0
			cpu0 := cpuTime()
			for b.Loop() {
				if len(pool) < batch {
					b.StopTimer()
					t0 := cpuTime()
					pool = make([]*crossbus.Event, 20_000)
					for j := range pool {
						pool[j] = benchEvent(n + j)
					}
					cpu0 += cpuTime() - t0 // the refill's CPU time is not counted
					b.StartTimer()
				}
				if _, err := db.Events().Append(ctx, fmt.Sprintf("seller-%d", n%100), sourcing.Any, pool[:batch]...); err != nil {
					b.Fatal(err)
				}
				pool = pool[batch:]
				n += batch
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			reportCPU(b, n, cpu0)
		})
	}
}

// BenchmarkSQLiteReplay measures reading the whole log back as events
// (ReadAll from position 1, every event decoded).
func BenchmarkSQLiteReplay(b *testing.B) {
	const total = 100_000
	db := openDB(b, sqlite.Options{})
	ctx := context.Background()
	for i := 0; i < total; i += 500 {
		chunk := make([]*crossbus.Event, 500)
		for j := range chunk {
			chunk[j] = benchEvent(i + j)
		}
		if _, err := db.Events().Append(ctx, fmt.Sprintf("seller-%d", (i/500)%100), sourcing.Any, chunk...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		for r, err := range db.Events().ReadAll(ctx, 1) {
			if err != nil {
				b.Fatal(err)
			}
			if r.Event == nil {
				b.Fatal("no event")
			}
			n++
		}
	}
	if n%total != 0 {
		b.Fatalf("read %d events, not a multiple of %d", n, total)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	reportCPU(b, n, cpu0)
}

// reportCPU reports events per second of process CPU time (all threads),
// which a machine busy with other work changes less than wall time.
func reportCPU(b *testing.B, n int, cpu0 time.Duration) {
	if used := cpuTime() - cpu0; cpu0 > 0 && used > 0 {
		b.ReportMetric(float64(n)/used.Seconds(), "events/cpu-s")
	}
}
