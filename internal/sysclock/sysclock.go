// Package sysclock is the real crossbus.Clock (package time), for the
// packages beside the root that take a clock and default to the system's.
package sysclock

import (
	"time"

	"github.com/crossbus/crossbus"
)

// Or returns c, or the system clock when c is nil.
func Or(c crossbus.Clock) crossbus.Clock {
	if c == nil {
		return clock{}
	}
	return c
}

type clock struct{}

func (clock) Now() time.Time                          { return time.Now() }
func (clock) NewTimer(d time.Duration) crossbus.Timer { return timer{time.NewTimer(d)} }
func (clock) AfterFunc(d time.Duration, f func()) crossbus.Timer {
	return timer{time.AfterFunc(d, f)}
}

type timer struct{ t *time.Timer }

func (t timer) C() <-chan time.Time        { return t.t.C }
func (t timer) Stop() bool                 { return t.t.Stop() }
func (t timer) Reset(d time.Duration) bool { return t.t.Reset(d) }
