package ops

import (
	"fmt"
	"strings"
)

// opsPrefix starts every error message of the package, once.
const opsPrefix = "crossbus/ops: "

// errorf is fmt.Errorf for the package's errors: the message starts with
// "crossbus/ops: " exactly once, however many errors of the package or of
// the crossbus root it wraps (their prefixes are dropped from the text;
// errors.Is and errors.As still reach them).
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	msg := err.Error()
	msg = strings.ReplaceAll(msg, opsPrefix, "")
	msg = strings.ReplaceAll(msg, "crossbus: ", "")
	return &opsError{msg: opsPrefix + msg, err: err}
}

// opsError is an error built by errorf.
type opsError struct {
	msg string
	err error // the fmt.Errorf error, for unwrapping
}

func (e *opsError) Error() string { return e.msg }

// Unwrap returns what the format's %w verbs wrapped.
func (e *opsError) Unwrap() []error {
	switch u := e.err.(type) {
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	case interface{ Unwrap() error }:
		return []error{u.Unwrap()}
	}
	return nil
}
