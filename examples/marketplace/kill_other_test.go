//go:build !unix

package main

// canKillSelf is false: the platform has no SIGKILL.
const canKillSelf = false

func killSelf() { panic("marketplace: no SIGKILL on this platform") }

func killedBySIGKILL(error) bool { return false }
