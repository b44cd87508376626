package eventpattern

import (
	"math"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// condKind is the kind of one entry of a field's value list.
type condKind uint8

const (
	cString      condKind = iota + 1 // "value"
	cNumber                          // 12.5
	cTrue                            // true
	cFalse                           // false
	cNull                            // null
	cPrefix                          // {"prefix": "x"}
	cPrefixFold                      // {"prefix": {"equals-ignore-case": "x"}}
	cSuffix                          // {"suffix": "x"}
	cSuffixFold                      // {"suffix": {"equals-ignore-case": "x"}}
	cEqualsFold                      // {"equals-ignore-case": "x"}
	cWildcard                        // {"wildcard": "x*y"}
	cNumeric                         // {"numeric": [">", 0, "<=", 5]}
	cExists                          // {"exists": true|false}
	cCIDR                            // {"cidr": "10.0.0.0/24"}
	cAnythingBut                     // {"anything-but": ...}
)

// cond is one compiled entry of a value list. A field matches when any of
// its conds matches one of the field's leaf values.
type cond struct {
	kind   condKind
	str    string       // string operand
	num    number       // cNumber operand
	wc     *wildcard    // cWildcard
	rng    numRange     // cNumeric
	exists bool         // cExists
	cidr   netip.Prefix // cCIDR
	ab     *anythingBut // cAnythingBut
}

// number is a JSON number as EventBridge compares it.
type number struct {
	f       float64
	q       int64 // quantized form, valid when inRange
	inRange bool
}

// Numbers are compared the way EventBridge (AWS Event Ruler) does: values
// between -5e9 and 5e9 inclusive are shifted by 5e9, scaled by 1e6 and
// truncated to an integer, which gives six digits of precision after the
// decimal point. Numeric operators only match numbers in that range.
const numLimit = 5e9

func newNumber(f float64) number {
	n := number{f: f}
	if f >= -numLimit && f <= numLimit {
		n.inRange = true
		n.q = quantize(f)
	}
	return n
}

func quantize(f float64) int64 { return int64(1e6 * (numLimit + f)) }

// equal reports numeric equality: by the quantized form when both numbers
// are in range (so 100 equals 1e2 and 1.0000001 equals 1), else exactly.
func (n number) equal(f float64) bool {
	if n.inRange && f >= -numLimit && f <= numLimit {
		return n.q == quantize(f)
	}
	return n.f == f
}

// numRange is a compiled numeric condition over quantized values.
type numRange struct {
	lo, hi         int64
	hasLo, hasHi   bool
	loOpen, hiOpen bool
	// original operands, for printing and translation
	ops  [2]string
	vals [2]float64
	nops int
}

func (r *numRange) match(f float64) bool {
	if !(f >= -numLimit && f <= numLimit) { // also rejects NaN
		return false
	}
	q := quantize(f)
	if r.hasLo && (q < r.lo || r.loOpen && q == r.lo) {
		return false
	}
	if r.hasHi && (q > r.hi || r.hiOpen && q == r.hi) {
		return false
	}
	return true
}

// abKind is the form of an anything-but condition.
type abKind uint8

const (
	abValues abKind = iota + 1 // strings and/or numbers
	abPrefix
	abSuffix
	abFold
	abWildcard
)

// anythingBut matches any leaf value that is not excluded. Values of a
// type the exclusion cannot apply to (a number for a string exclusion, a
// boolean or null for any exclusion) are never excluded, so they match.
type anythingBut struct {
	kind abKind
	strs []string   // abValues strings, abPrefix/abSuffix operands, abFold operands
	nums []number   // abValues numbers
	wcs  []wildcard // abWildcard
	list bool       // the operand was written as a list
}

func (a *anythingBut) excludes(n *node) bool {
	switch a.kind {
	case abValues:
		switch n.kind {
		case kString:
			for _, s := range a.strs {
				if s == n.s {
					return true
				}
			}
		case kNumber:
			for _, x := range a.nums {
				if x.equal(n.num) {
					return true
				}
			}
		}
		return false
	}
	if n.kind != kString {
		return false
	}
	switch a.kind {
	case abPrefix:
		for _, s := range a.strs {
			if strings.HasPrefix(n.s, s) {
				return true
			}
		}
	case abSuffix:
		for _, s := range a.strs {
			if strings.HasSuffix(n.s, s) {
				return true
			}
		}
	case abFold:
		for _, s := range a.strs {
			if strings.EqualFold(s, n.s) {
				return true
			}
		}
	case abWildcard:
		for i := range a.wcs {
			if a.wcs[i].match(n.s) {
				return true
			}
		}
	}
	return false
}

// match reports whether c matches the leaf value n (never an object or array).
func (c *cond) match(n *node) bool {
	switch c.kind {
	case cString:
		return n.kind == kString && n.s == c.str
	case cNumber:
		return n.kind == kNumber && c.num.equal(n.num)
	case cTrue:
		return n.kind == kTrue
	case cFalse:
		return n.kind == kFalse
	case cNull:
		return n.kind == kNull
	case cPrefix:
		return n.kind == kString && strings.HasPrefix(n.s, c.str)
	case cPrefixFold:
		return n.kind == kString && hasPrefixFold(n.s, c.str)
	case cSuffix:
		return n.kind == kString && strings.HasSuffix(n.s, c.str)
	case cSuffixFold:
		return n.kind == kString && hasSuffixFold(n.s, c.str)
	case cEqualsFold:
		return n.kind == kString && strings.EqualFold(n.s, c.str)
	case cWildcard:
		return n.kind == kString && c.wc.match(n.s)
	case cNumeric:
		return n.kind == kNumber && c.rng.match(n.num)
	case cExists:
		return c.exists // any leaf exists
	case cCIDR:
		return n.kind == kString && matchCIDR(c.cidr, n.s)
	case cAnythingBut:
		return !c.ab.excludes(n)
	}
	return false
}

func matchCIDR(p netip.Prefix, s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return false
	}
	return p.Contains(a.Unmap())
}

// equalFoldRune reports whether a and b are equal under simple Unicode case
// folding, as strings.EqualFold compares runes.
func equalFoldRune(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether s begins with prefix, ignoring case.
func hasPrefixFold(s, prefix string) bool {
	for prefix != "" {
		if s == "" {
			return false
		}
		r1, n1 := utf8.DecodeRuneInString(s)
		r2, n2 := utf8.DecodeRuneInString(prefix)
		if !equalFoldRune(r1, r2) {
			return false
		}
		s, prefix = s[n1:], prefix[n2:]
	}
	return true
}

// hasSuffixFold reports whether s ends with suffix, ignoring case.
func hasSuffixFold(s, suffix string) bool {
	for suffix != "" {
		if s == "" {
			return false
		}
		r1, n1 := utf8.DecodeLastRuneInString(s)
		r2, n2 := utf8.DecodeLastRuneInString(suffix)
		if !equalFoldRune(r1, r2) {
			return false
		}
		s, suffix = s[:len(s)-n1], suffix[:len(suffix)-n2]
	}
	return true
}

// wildcard is a compiled wildcard operand: literal text separated by '*',
// each '*' matching any run of characters, including none.
type wildcard struct {
	src  string   // as written, escapes included
	lits []string // len = stars+1; lits[0] anchors the start, the last anchors the end
}

// parseWildcard compiles a wildcard operand. '\*' is a literal star and
// '\\' a literal backslash; any other escape, a trailing lone backslash,
// and two consecutive (unescaped) stars are errors, as in EventBridge.
func parseWildcard(src string) (wildcard, string) {
	w := wildcard{src: src}
	var cur strings.Builder
	prevStar := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '*':
			if prevStar {
				return w, "wildcard must not contain consecutive '*' characters"
			}
			w.lits = append(w.lits, cur.String())
			cur.Reset()
			prevStar = true
			continue
		case '\\':
			if i+1 >= len(src) {
				return w, `wildcard must not end with an unescaped '\'`
			}
			i++
			if src[i] != '*' && src[i] != '\\' {
				return w, `wildcard escapes must be '\*' or '\\'`
			}
			cur.WriteByte(src[i])
		default:
			cur.WriteByte(c)
		}
		prevStar = false
	}
	w.lits = append(w.lits, cur.String())
	return w, ""
}

func (w *wildcard) match(s string) bool {
	lits := w.lits
	if len(lits) == 1 {
		return s == lits[0]
	}
	first, last := lits[0], lits[len(lits)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, mid := range lits[1 : len(lits)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

// isFinite reports whether f is neither infinite nor NaN.
func isFinite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
