package dynamodb_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/dynamodb"
)

// benchServer returns the endpoint benchmarks use and a function that
// reads the server's CPU time: a dynalite of the benchmark's own when
// CROSSBUS_DYNALITE is set (so its CPU can be read), else the shared
// server at CROSSBUS_DYNAMODB_ENDPOINT (whose CPU is not reported).
func benchServer(b *testing.B) (string, func() time.Duration) {
	if os.Getenv("CROSSBUS_DYNALITE") == "" {
		return endpoint(b), func() time.Duration { return 0 }
	}
	d := startBenchDynalite(b)
	return d.endpoint(), d.cpu
}

// benchEvent is a typical small domain event: ~100 bytes of JSON data.
func benchEvent(i int) *crossbus.Event {
	e := crossbus.NewEvent("com.example.payment.captured", "/payments")
	_ = crossbus.SetData(&e, map[string]any{"account": "acct-42", "amount": 1250 + i%100, "currency": "EUR", "order": fmt.Sprintf("order-%d", i)})
	return &e
}

// BenchmarkDynamoDBAppend measures appends to the event store, each a
// conditional commit put, a global log entry, dedupe markers and the
// published flag (see the package documentation): one event per Append and
// 100 per Append from one caller, across 100 streams, and one event per
// Append from 8 concurrent callers (which race for the global log). It
// reports events/s, appends/s, the test process's CPU per append
// (cpu-ns/op) and, with a dynalite of its own, the server's
// (server-cpu-ns/op).
func BenchmarkDynamoDBAppend(b *testing.B) {
	for _, tc := range []struct {
		name           string
		batch, callers int
	}{{"single", 1, 1}, {"batch=100", 100, 1}, {"single/parallel=8", 1, 8}} {
		b.Run(tc.name, func(b *testing.B) {
			ep, serverCPU := benchServer(b)
			s := benchEventStore(b, ep)
			ctx := context.Background()
			var appends atomic.Int64
			appendOne := func(n int64) {
				evs := make([]*crossbus.Event, tc.batch)
				for j := range evs {
					evs[j] = benchEvent(int(n)*tc.batch + j)
				}
				if _, err := s.Append(ctx, fmt.Sprintf("acct-%d", n%100), sourcing.Any, evs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0, srv0 := cpuTime(), serverCPU()
			b.ResetTimer()
			if tc.callers == 1 {
				for i := 0; i < b.N; i++ {
					appendOne(appends.Add(1))
				}
			} else {
				b.SetParallelism(max(tc.callers/runtime.GOMAXPROCS(0), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						appendOne(appends.Add(1))
					}
				})
			}
			b.StopTimer()
			report(b, float64(appends.Load()), "appends/s", cpu0, srv0, serverCPU)
			b.ReportMetric(float64(appends.Load())*float64(tc.batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkDynamoDBIdempotency measures the claim protocol of one handled
// event: Begin on a fresh key (a conditional put), then Complete (a
// conditional update), from one caller and from 16.
func BenchmarkDynamoDBIdempotency(b *testing.B) {
	for _, callers := range []int{1, 16} {
		name := "serial"
		if callers > 1 {
			name = fmt.Sprintf("parallel=%d", callers)
		}
		b.Run(name, func(b *testing.B) {
			ep, serverCPU := benchServer(b)
			c, tables := newTablesAt(b, ep)
			idem, err := dynamodb.NewIdempotencyStore(context.Background(), c, tables.Idempotency)
			require.NoError(b, err)
			ctx := context.Background()
			run := claimtoken.New()[:8]
			var n atomic.Int64
			claim := func(i int64) {
				key := "sub\x00/bench\x00" + run + "-" + strconv.FormatInt(i, 10)
				cl, err := idem.Begin(ctx, key, 30*time.Second)
				if err != nil || cl.Status != crossbus.ClaimNew {
					b.Fatalf("begin: %v %v", cl.Status, err)
				}
				if err := idem.Complete(ctx, key, cl.Token, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0, srv0 := cpuTime(), serverCPU()
			b.ResetTimer()
			if callers == 1 {
				for i := 0; i < b.N; i++ {
					claim(n.Add(1))
				}
			} else {
				b.SetParallelism(max(callers/runtime.GOMAXPROCS(0), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						claim(n.Add(1))
					}
				})
			}
			b.StopTimer()
			report(b, float64(n.Load()), "claims/s", cpu0, srv0, serverCPU)
		})
	}
}

func benchEventStore(b *testing.B, ep string) *dynamodb.EventStore {
	c, tables := newTablesAt(b, ep)
	s, err := dynamodb.NewEventStore(context.Background(), c, tables.Events)
	require.NoError(b, err)
	return s
}

// report reports ops per second, the process's CPU per op and the
// server's.
func report(b *testing.B, ops float64, unit string, cpu0, srv0 time.Duration, serverCPU func() time.Duration) {
	b.ReportMetric(ops/b.Elapsed().Seconds(), unit)
	if used := cpuTime() - cpu0; cpu0 > 0 && used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/ops, "cpu-ns/op")
	}
	if srv := serverCPU() - srv0; srv0 > 0 && srv > 0 {
		b.ReportMetric(float64(srv.Nanoseconds())/ops, "server-cpu-ns/op")
	}
}

// startBenchDynalite starts an in-memory dynalite for one benchmark.
func startBenchDynalite(b *testing.B) *benchDynalite {
	bin := os.Getenv("CROSSBUS_DYNALITE")
	d := &benchDynalite{}
	port, cmd, err := startDynalite(bin, "")
	require.NoError(b, err)
	d.port, d.pid = port, cmd.Process.Pid
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return d
}

type benchDynalite struct{ port, pid int }

func (d *benchDynalite) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", d.port) }

// cpu reads the server's user + system time from /proc (0 elsewhere).
func (d *benchDynalite) cpu() time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // clock ticks of 1/100 s
}
