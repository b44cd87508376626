//go:build !unix

package memory_test

import "time"

// cpuTime is unknown here; benchmarks then report no CPU-time metric.
func cpuTime() time.Duration { return 0 }
