//go:build unix

package ops_test

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

const canKill = true

// killSelf ends the process with SIGKILL: no deferred call or flush runs.
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	for {
		time.Sleep(time.Hour)
	}
}

func killProcess(p *os.Process) { _ = p.Signal(syscall.SIGKILL) }

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
