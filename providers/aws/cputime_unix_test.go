//go:build unix

package aws_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the test process used so far:
// client and test server together, which the wall clock on a shared machine
// does not isolate.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
