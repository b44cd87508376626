//go:build !linux

package eventpattern

func threadCPUTime() (int64, bool) { return 0, false }
