package benchcpu

import (
	"runtime"
	"testing"
)

func TestUsedGrowsWithWork(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("the process's CPU time is read on unix only")
	}
	c := Start()
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	used, ok := c.Used()
	if !ok || used <= 0 {
		t.Fatalf("CPU time used = %v, ok = %v after a busy loop (%d)", used, ok, x)
	}
}
