package ops

import "github.com/crossbus/crossbus/internal/errtext"

// opsPrefix starts every error message of the package, once.
const opsPrefix = "crossbus/ops: "

// errorf is fmt.Errorf for the package's errors: the message starts with
// "crossbus/ops: " exactly once, however many errors of the package or of
// the crossbus root it wraps (their prefixes are dropped from the text;
// errors.Is and errors.As still reach them).
func errorf(format string, args ...any) error {
	return errtext.Errorf(opsPrefix, []string{"crossbus: "}, format, args...)
}
