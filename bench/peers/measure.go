package peers

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

// CPUTime is the CPU time (user + system) the whole process has used so
// far: every goroutine, the garbage collector and, in the NATS scenarios,
// the embedded server.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Result is one measured run of a scenario.
type Result struct {
	Scenario string  `json:"scenario"`
	Events   int     `json:"events"`
	WallNs   float64 `json:"wall_ns_per_event"`
	CPUNs    float64 `json:"cpu_ns_per_event"`
	Allocs   float64 `json:"allocs_per_event"`
	Bytes    float64 `json:"bytes_per_event"`
	GCs      uint32  `json:"gcs"`
}

// Measure opens the scenario, warms it up with warmup events, then runs n
// events and measures wall time, process CPU time and allocations of that
// run alone (setup, warm-up and closing are outside). With profile set, a
// CPU profile of the measured run is written to it.
func Measure(ctx context.Context, s Scenario, cfg Config, n, warmup int, profile io.Writer) (Result, error) {
	r, err := s.Open(ctx, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open: %w", s.Name, err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = r.Close(ctx)
		}
	}()
	if warmup > 0 {
		if err := r.Run(ctx, warmup); err != nil {
			return Result{}, fmt.Errorf("%s: warm-up: %w", s.Name, err)
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return Result{}, err
		}
	}
	cpu0, t0 := CPUTime(), time.Now()
	err = r.Run(ctx, n)
	wall, cpu := time.Since(t0), CPUTime()-cpu0
	if profile != nil {
		pprof.StopCPUProfile()
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", s.Name, err)
	}
	closed = true
	if err := r.Close(ctx); err != nil {
		return Result{}, fmt.Errorf("%s: close: %w", s.Name, err)
	}
	fn := float64(n)
	return Result{
		Scenario: s.Name,
		Events:   n,
		WallNs:   float64(wall.Nanoseconds()) / fn,
		CPUNs:    float64(cpu.Nanoseconds()) / fn,
		Allocs:   float64(after.Mallocs-before.Mallocs) / fn,
		Bytes:    float64(after.TotalAlloc-before.TotalAlloc) / fn,
		GCs:      after.NumGC - before.NumGC,
	}, nil
}
