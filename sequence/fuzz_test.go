package sequence_test

import (
	"testing"

	"github.com/crossbus/crossbus/sequence"
)

// FuzzParseSequence feeds foreign sequence extension values (from any
// producer) to the parser: it never panics, accepts exactly the decimal
// numbers that fit 64 bits, and formatting an accepted value parses back to
// it.
func FuzzParseSequence(f *testing.F) {
	for _, s := range []string{"1", "00000000000000000042", "18446744073709551615", "18446744073709551616", "", "-1", "1e3", " 7", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := sequence.Parse(s)
		if err != nil {
			return
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				t.Fatalf("accepted %q", s)
			}
		}
		back, err := sequence.Parse(sequence.Format(n))
		if err != nil || back != n {
			t.Fatalf("%q: %d formatted and parsed back as %d, %v", s, n, back, err)
		}
	})
}
