// Package benchcpu measures the CPU time a benchmark's process spends, so
// that benchmarks on a shared machine can report CPU time per event beside
// wall-clock throughput: the process's CPU time (client and in-process
// server together) is steadier than the wall clock when other work shares
// the cores.
package benchcpu

import (
	"testing"
	"time"
)

// Clock is a start point of the process's CPU time.
type Clock struct {
	start time.Duration
	ok    bool
}

// Start reads the process's CPU time now.
func Start() Clock {
	d, ok := processCPU()
	return Clock{start: d, ok: ok}
}

// Used is the CPU time spent since c started; ok is false where the
// platform does not report it.
func (c Clock) Used() (time.Duration, bool) {
	d, ok := processCPU()
	return d - c.start, ok && c.ok
}

// Report reports the CPU time spent since c started per event, as the
// metric "cpu-µs/event" (nothing where the platform does not report it).
func (c Clock) Report(b *testing.B, events int) {
	if used, ok := c.Used(); ok && events > 0 {
		b.ReportMetric(float64(used)/float64(time.Microsecond)/float64(events), "cpu-µs/event")
	}
}
