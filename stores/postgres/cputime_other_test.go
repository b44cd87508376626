//go:build !unix

package postgres_test

import (
	"runtime"
	"time"
)

func cpuTime() time.Duration { return 0 }

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
