package peers

import (
	"context"
	"testing"
	"time"
)

// TestScenarios runs every scenario briefly, so a broken scenario fails
// `go test` rather than the comparison.
func TestScenarios(t *testing.T) {
	ctx := context.Background()
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			n := 2000
			if s.Group == "nats" {
				n = 500
			}
			res, err := Measure(ctx, s, DefaultConfig(), n, 100, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.CPUNs <= 0 || res.WallNs <= 0 {
				t.Fatalf("nothing measured: %+v", res)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	for pattern, want := range map[string]int{"all": len(Scenarios()), "nats": 3, "watermill": 3, "crossbus/plain": 1, "crossbus": 6} {
		got, err := Select(pattern)
		if err != nil || len(got) != want {
			t.Errorf("Select(%q) = %d scenarios, %v; want %d", pattern, len(got), err, want)
		}
	}
	if _, err := Select("nope"); err == nil {
		t.Error("Select(nope) did not fail")
	}
}

// BenchmarkPeers runs each scenario for b.N events: ns/op is wall time per
// event, cpu-ns/op the process's CPU time per event (all goroutines, the
// garbage collector and, for NATS, the embedded server), allocs/op and B/op
// every allocation of the process per event. cmd/peers gives steadier
// figures (medians of alternating runs in fresh processes).
func BenchmarkPeers(b *testing.B) {
	ctx := context.Background()
	for _, s := range Scenarios() {
		b.Run(s.Name, func(b *testing.B) {
			r, err := s.Open(ctx, DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(ctx)
			warm := 2000
			if s.Group == "nats" {
				warm = 1000
			}
			if err := r.Run(ctx, warm); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := CPUTime(), time.Now()
			if err := r.Run(ctx, b.N); err != nil {
				b.Fatal(err)
			}
			cpu, wall := CPUTime()-cpu0, time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/wall.Seconds(), "events/s")
		})
	}
}
