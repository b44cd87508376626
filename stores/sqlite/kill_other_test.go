//go:build !unix

package sqlite_test

// canKillSelf is false: the platform has no SIGKILL.
const canKillSelf = false

func killSelf() { panic("sqlite_test: no SIGKILL on this platform") }

func killedBySIGKILL(error) bool { return false }
