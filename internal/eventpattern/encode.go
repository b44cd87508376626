package eventpattern

import (
	"cmp"
	"slices"
	"strconv"
	"unicode/utf8"
)

// This file prints compiled patterns back as canonical JSON: members sorted
// by name ("$or" sorts first), value lists in the order written.

func appendObj(b []byte, o *objNode) []byte {
	fields := slices.Clone(o.fields)
	slices.SortFunc(fields, func(x, y *fieldNode) int { return cmp.Compare(x.name, y.name) })
	b = append(b, '{')
	if o.or != nil {
		b = append(b, `"$or":[`...)
		for i, alt := range o.or {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendObj(b, alt)
		}
		b = append(b, ']')
	}
	for i, f := range fields {
		if i > 0 || o.or != nil {
			b = append(b, ',')
		}
		b = appendString(b, f.name)
		b = append(b, ':')
		if f.obj != nil {
			b = appendObj(b, f.obj)
		} else {
			b = appendLeaf(b, f.leaf)
		}
	}
	return append(b, '}')
}

func appendLeaf(b []byte, l *leafNode) []byte {
	b = append(b, '[')
	for i := range l.conds {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCond(b, &l.conds[i])
	}
	return append(b, ']')
}

func appendOp(b []byte, op string) []byte {
	b = append(b, '{')
	b = appendString(b, op)
	return append(b, ':')
}

func appendCond(b []byte, c *cond) []byte {
	switch c.kind {
	case cString:
		return appendString(b, c.str)
	case cNumber:
		return appendNumber(b, c.num.f)
	case cTrue:
		return append(b, "true"...)
	case cFalse:
		return append(b, "false"...)
	case cNull:
		return append(b, "null"...)
	case cPrefix, cSuffix, cEqualsFold:
		b = appendOp(b, map[condKind]string{cPrefix: "prefix", cSuffix: "suffix", cEqualsFold: "equals-ignore-case"}[c.kind])
		b = appendString(b, c.str)
	case cPrefixFold, cSuffixFold:
		op := "prefix"
		if c.kind == cSuffixFold {
			op = "suffix"
		}
		b = appendOp(b, op)
		b = appendOp(b, "equals-ignore-case")
		b = appendString(b, c.str)
		b = append(b, '}')
	case cWildcard:
		b = appendOp(b, "wildcard")
		b = appendString(b, c.wc.src)
	case cExists:
		b = appendOp(b, "exists")
		b = strconv.AppendBool(b, c.exists)
	case cCIDR:
		b = appendOp(b, "cidr")
		b = appendString(b, c.str)
	case cNumeric:
		b = appendOp(b, "numeric")
		b = append(b, '[')
		for i := 0; i < c.rng.nops; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c.rng.ops[i])
			b = append(b, ',')
			b = appendNumber(b, c.rng.vals[i])
		}
		b = append(b, ']')
	case cAnythingBut:
		b = appendOp(b, "anything-but")
		b = appendAnythingBut(b, c.ab)
	}
	return append(b, '}')
}

func appendAnythingBut(b []byte, a *anythingBut) []byte {
	strList := func(b []byte, ss []string) []byte {
		if !a.list {
			return appendString(b, ss[0])
		}
		b = append(b, '[')
		for i, s := range ss {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']')
	}
	switch a.kind {
	case abValues:
		if !a.list {
			if len(a.strs) == 1 {
				return appendString(b, a.strs[0])
			}
			return appendNumber(b, a.nums[0].f)
		}
		b = append(b, '[')
		for i, s := range a.strs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		for i, n := range a.nums {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNumber(b, n.f)
		}
		return append(b, ']')
	case abPrefix, abSuffix:
		if a.kind == abPrefix {
			b = appendOp(b, "prefix")
		} else {
			b = appendOp(b, "suffix")
		}
		if a.list {
			b = strList(b, a.strs)
		} else {
			b = appendString(b, a.strs[0])
		}
	case abFold:
		b = appendOp(b, "equals-ignore-case")
		b = strList(b, a.strs)
	case abWildcard:
		b = appendOp(b, "wildcard")
		srcs := make([]string, len(a.wcs))
		for i := range a.wcs {
			srcs[i] = a.wcs[i].src
		}
		b = strList(b, srcs)
	}
	return append(b, '}')
}

// appendNumber prints f as the shortest JSON number that parses back to f.
func appendNumber(b []byte, f float64) []byte {
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string literal, escaping quotes,
// backslashes and control characters; other bytes pass through as is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&0xF])
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return append(b, '"')
}
