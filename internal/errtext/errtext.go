// Package errtext builds error messages that name their package once:
// an error wrapping others of the library would otherwise repeat
// "crossbus: " (or "crossbus/ops: ") at every level.
package errtext

import (
	"fmt"
	"strings"
)

// Errorf is fmt.Errorf whose message starts with prefix exactly once: every
// occurrence of prefix and of the drop prefixes is removed from the
// formatted text before prefix is put in front. errors.Is and errors.As
// still reach what the format's %w verbs wrapped.
func Errorf(prefix string, drop []string, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	msg := err.Error()
	for _, p := range append(drop, prefix) {
		if strings.Contains(msg, p) {
			msg = strings.ReplaceAll(msg, p, "")
		}
	}
	return &prefixed{msg: prefix + msg, err: err}
}

// prefixed is an error built by Errorf.
type prefixed struct {
	msg string
	err error // the fmt.Errorf error, for unwrapping
}

func (e *prefixed) Error() string { return e.msg }

// Unwrap returns what the format's %w verbs wrapped.
func (e *prefixed) Unwrap() []error {
	switch u := e.err.(type) {
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	case interface{ Unwrap() error }:
		return []error{u.Unwrap()}
	}
	return nil
}
