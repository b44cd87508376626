//go:build !unix

package redis_test

import "time"

func cpuTime() time.Duration { return 0 }
