//go:build !linux

package pattern

func threadCPUTime() (int64, bool) { return 0, false }
