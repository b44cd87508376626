package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// Replacements that make reasons of the same cause equal: the variable parts
// of an error message (ids, numbers, addresses, durations) become
// placeholders. Order matters: wider shapes first.
var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`), "<uuid>"},
	{regexp.MustCompile(`\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`), "<url>"},
	{regexp.MustCompile(`\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b`), "<email>"},
	{regexp.MustCompile(`\[[0-9a-fA-F:]*:[0-9a-fA-F:.%\w]*\](:\d+)?`), "<addr>"},
	{regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`), "<addr>"},
	{regexp.MustCompile(`\b[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*:\d{2,5}\b`), "<addr>"},
	{regexp.MustCompile(`\b0x[0-9a-fA-F]+\b`), "<hex>"},
	{regexp.MustCompile(`\b(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+\b`), "<duration>"},
	{regexp.MustCompile(`\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b`), "<hex>"},
	{regexp.MustCompile(`\+?\d+(\.\d+)?`), "<n>"},
	{regexp.MustCompile(`\s+`), " "},
}

// maxCauseLen bounds a normalised cause.
const maxCauseLen = 240

// NormalizeReason returns the cause of a dead-letter reason: its first line
// with ids, UUIDs, numbers, hexadecimal values, URLs, e-mail and network
// addresses and durations replaced by placeholders, so that "order 17
// failed after 1.5s: dial 10.0.0.7:5432" and "order 942 failed after
// 300ms: dial 10.0.0.9:5432" fall in one group:
// "order <n> failed after <duration>: dial <addr>". A panic's stack trace
// (every line after the first) is left out.
func NormalizeReason(reason string) string {
	if i := strings.IndexByte(reason, '\n'); i >= 0 {
		reason = reason[:i]
	}
	for _, n := range normalizers {
		reason = n.re.ReplaceAllString(reason, n.with)
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > maxCauseLen {
		reason = strings.ToValidUTF8(reason[:maxCauseLen], "") + "…"
	}
	if reason == "" {
		reason = "(no reason)"
	}
	return reason
}

// groupID names a cause in URLs and commands: a short hash of the cause and
// where the dead letters came from.
func groupID(topic, subscription, cause string) string {
	sum := sha256.Sum256([]byte(topic + "\x00" + subscription + "\x00" + cause))
	return "g" + hex.EncodeToString(sum[:6])
}
