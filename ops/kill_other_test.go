//go:build !unix

package ops_test

import "os"

const canKill = false

func killSelf()                      {}
func killProcess(*os.Process)        {}
func killedBySIGKILL(err error) bool { return false }
