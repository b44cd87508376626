package eventpattern

import "syscall"

// threadCPUTime returns the CPU time the calling OS thread has used, in
// nanoseconds. Benchmarks report it besides wall time because a shared
// machine's load inflates wall time but not CPU time.
func threadCPUTime() (int64, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
