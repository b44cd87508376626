package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
)

// benchEvent is a typical small domain event: ~100 bytes of JSON data.
func benchEvent(i int) *crossbus.Event {
	e := crossbus.NewEvent("com.example.payout.credited", "/marketplace/payouts")
	_ = crossbus.SetData(&e, map[string]any{"seller": "seller-42", "amount": 1250 + i%100, "currency": "EUR", "order": fmt.Sprintf("order-%d", i)})
	return &e
}

// BenchmarkPostgresAppend measures appends to the postgres event store:
// one event per Append (one transaction each) and batches of 100 events
// per Append, across 100 streams, from one goroutine and from 8.
func BenchmarkPostgresAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("batch=%d/writers=%d", batch, writers), func(b *testing.B) {
				db := openDB(b, postgres.Options{MaxConns: 16})
				ctx := context.Background()
				pool := make([]*crossbus.Event, 20_000)
				for j := range pool {
					pool[j] = benchEvent(j)
				}
				b.ReportAllocs()
				n := 0
				cpu0 := cpuTime()
				start := time.Now()
				if writers == 1 {
					var fresh []*crossbus.Event // events not yet appended, made outside the timer
					for i := 0; b.Loop(); i++ {
						if len(fresh) < batch {
							b.StopTimer()
							t0, w0 := cpuTime(), time.Now()
							fresh = make([]*crossbus.Event, 20*batch)
							for j := range fresh {
								fresh[j] = benchEvent(n + j)
							}
							cpu0 += cpuTime() - t0 // the refill's CPU and wall time are not counted
							start = start.Add(time.Since(w0))
							b.StartTimer()
						}
						if _, err := db.Events().Append(ctx, fmt.Sprintf("seller-%d", i%100), sourcing.Any, fresh[:batch]...); err != nil {
							b.Fatal(err)
						}
						fresh = fresh[batch:]
						n += batch
					}
				} else {
					// Each writer copies events from a shared pool and gives
					// them fresh ids; that work is counted.
					b.SetParallelism(writers / max(1, runtimeProcs()))
					var total = make(chan int, 64)
					b.RunParallel(func(pb *testing.PB) {
						k := 0
						for i := 0; pb.Next(); i++ {
							appendBatch(b, db, ctx, i*7+k, batch, pool)
							k += batch
						}
						total <- k
					})
					close(total)
					for k := range total {
						n += k
					}
				}
				elapsed := time.Since(start)
				b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
				reportCPU(b, n, cpu0)
			})
		}
	}
}

func appendBatch(b *testing.B, db *postgres.DB, ctx context.Context, i, batch int, pool []*crossbus.Event) {
	evs := make([]*crossbus.Event, batch)
	for j := range evs {
		e := *pool[(i*batch+j)%len(pool)]
		e.Context = e.Context.Clone()
		e.SetID(fmt.Sprintf("%d-%d-%d", i, j, time.Now().UnixNano()))
		evs[j] = &e
	}
	if _, err := db.Events().Append(ctx, fmt.Sprintf("seller-%d", i%100), sourcing.Any, evs...); err != nil {
		b.Error(err)
	}
}

// BenchmarkPostgresReplay measures reading the whole log back as events
// (ReadAll from position 1, every event decoded).
func BenchmarkPostgresReplay(b *testing.B) {
	const total = 100_000
	db := openDB(b, postgres.Options{})
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

// BenchmarkPostgresIdempotency measures the claim protocol of one event:
// Begin (claim) then Complete, from one goroutine and from 8.
func BenchmarkPostgresIdempotency(b *testing.B) {
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			db := openDB(b, postgres.Options{MaxConns: 16})
			s := db.Idempotency()
			ctx := context.Background()
			prefix := claimtoken.New()[:8]
			b.ReportAllocs()
			cpu0 := cpuTime()
			start := time.Now()
			n := 0
			claim := func(key string) {
				c, err := s.Begin(ctx, key, time.Minute)
				if err != nil || c.Status != crossbus.ClaimNew {
					b.Errorf("begin %s: %v %v", key, c.Status, err)
					return
				}
				if err := s.Complete(ctx, key, c.Token, time.Hour); err != nil {
					b.Error(err)
				}
			}
			if workers == 1 {
				for i := 0; b.Loop(); i++ {
					claim(fmt.Sprintf("%s-%d", prefix, i))
					n++
				}
			} else {
				b.SetParallelism(workers / max(1, runtimeProcs()))
				counts := make(chan int, 64)
				b.RunParallel(func(pb *testing.PB) {
					id := claimtoken.New()[:8]
					k := 0
					for pb.Next() {
						claim(fmt.Sprintf("%s-%s-%d", prefix, id, k))
						k++
					}
					counts <- k
				})
				close(counts)
				for k := range counts {
					n += k
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			reportCPU(b, n, cpu0)
		})
	}
}

// discard is a publisher that accepts everything.
type discard struct{}

func (discard) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	return nil
}

// BenchmarkPostgresOutboxRelay measures the relay's side of the outbox:
// read pending messages, publish them (to a bus that accepts at once) and
// mark them sent, 100 per batch. Each op relays 10,000 messages appended
// beforehand (outside the timer).
func BenchmarkPostgresOutboxRelay(b *testing.B) {
	const perOp = 10_000
	db := openDB(b, postgres.Options{Outbox: sourcing.ToTopic("payouts")})
	ctx := context.Background()
	relay := &sourcing.Relay{Outbox: db.Events(), Bus: discard{}, BatchSize: 100}
	fill := func(round int) {
		for i := 0; i < perOp; i += 500 {
			chunk := make([]*crossbus.Event, 500)
			for j := range chunk {
				chunk[j] = benchEvent(i + j)
			}
			if _, err := db.Events().Append(ctx, fmt.Sprintf("seller-%d-%d", round, i/500), sourcing.Any, chunk...); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	n := 0
	var cpu time.Duration
	var wall time.Duration
	for round := 0; b.Loop(); round++ {
		b.StopTimer()
		fill(round)
		b.StartTimer()
		c0, t0 := cpuTime(), time.Now()
		got, err := relay.Flush(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		wall += time.Since(t0)
		n += got
	}
	if n%perOp != 0 {
		b.Fatalf("relayed %d messages, not a multiple of %d", n, perOp)
	}
	b.ReportMetric(float64(n)/wall.Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/event")
	}
}

// reportCPU reports this process's CPU time per event (all threads; the
// server's CPU is not included), which a machine busy with other work
// changes less than wall time.
func reportCPU(b *testing.B, n int, cpu0 time.Duration) {
	if used := cpuTime() - cpu0; cpu0 > 0 && used > 0 && n > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(n), "cpu-ns/event")
	}
}
