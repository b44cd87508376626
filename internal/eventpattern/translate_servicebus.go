package eventpattern

import "strings"

// ServiceBusMaxFilterLen is the longest SQL filter expression Service Bus
// accepts.
const ServiceBusMaxFilterLen = 1024

// ToServiceBusSQL translates p to a Service Bus SQL filter over the
// application properties crossbus writes: each context attribute and
// extension as "cloudEvents_<name>".
//
// Exact strings become "=" or IN, prefixes, suffixes and wildcards LIKE
// (with '%' and '_' escaped by '!'), exists EXISTS and NOT EXISTS,
// anything-but NOT IN and NOT LIKE, which, like the pattern, never match a
// missing property (SQL's unknown). Service Bus cannot see data or ignore
// case, so such conditions are dropped and exact is false; conditions on
// extensions are not exact either, as their property types may differ from
// their JSON form. Filters longer than ServiceBusMaxFilterLen keep only the
// leading conditions of the top-level AND. If nothing remains, the error is
// ErrNotTranslatable.
func ToServiceBusSQL(p *Pattern) (sql string, exact bool, err error) {
	return translateAttrs(p, attrTarget{cond: sbCond, exists: sbHas, missing: sbMissing, in: sbIn, maxLen: ServiceBusMaxFilterLen})
}

func sbIn(name string, values []string) *bexpr {
	q := make([]string, len(values))
	for i, s := range values {
		q[i] = sbQuote(s)
	}
	return atom(sbProp(name) + " IN (" + strings.Join(q, ", ") + ")")
}

func sbProp(name string) string { return "cloudEvents_" + name }

func sbHas(name string) *bexpr { return atom("EXISTS(" + sbProp(name) + ")") }

func sbMissing(name string) *bexpr { return atom("NOT EXISTS(" + sbProp(name) + ")") }

// sbCond translates one value-list entry on property name.
func sbCond(name string, ext bool, c *cond) (*bexpr, bool) {
	prop := sbProp(name)
	switch c.kind {
	case cString:
		return atom(prop + " = " + sbQuote(c.str)), !ext
	case cPrefix:
		return atom(prop + " LIKE " + sbLike("", c.str, "%")), !ext
	case cSuffix:
		return atom(prop + " LIKE " + sbLike("%", c.str, "")), !ext
	case cWildcard:
		return atom(prop + " LIKE " + sbWildcard(c.wc)), !ext
	case cAnythingBut:
		if ext {
			return sbHas(name), false
		}
		a := c.ab
		switch a.kind {
		case abValues:
			if len(a.strs) == 0 {
				// Numbers never exclude a string property.
				return sbHas(name), true
			}
			in := sbIn(name, a.strs).text
			return atom(prop + " NOT" + strings.TrimPrefix(in, prop)), true
		case abPrefix, abSuffix:
			var kids []*bexpr
			for _, s := range a.strs {
				if a.kind == abPrefix {
					kids = append(kids, atom(prop+" NOT LIKE "+sbLike("", s, "%")))
				} else {
					kids = append(kids, atom(prop+" NOT LIKE "+sbLike("%", s, "")))
				}
			}
			return and(kids...), true
		case abWildcard:
			var kids []*bexpr
			for i := range a.wcs {
				kids = append(kids, atom(prop+" NOT LIKE "+sbWildcard(&a.wcs[i])))
			}
			return and(kids...), true
		}
		return sbHas(name), false
	}
	// equals-ignore-case, prefix/suffix ignoring case, numeric, cidr,
	// numbers, booleans, null
	return nil, false
}

// sbQuote writes s as a SQL string literal.
func sbQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sbLikeEscape escapes LIKE's wildcards '%' and '_' (and the escape
// character '!') and reports whether it escaped anything.
func sbLikeEscape(b *strings.Builder, s string) bool {
	escaped := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '_', '!':
			b.WriteByte('!')
			b.WriteByte(c)
			escaped = true
		case '\'':
			b.WriteString("''")
		default:
			b.WriteByte(c)
		}
	}
	return escaped
}

// sbLike builds a LIKE pattern literal: head + escaped lit + tail.
func sbLike(head, lit, tail string) string {
	var b strings.Builder
	b.WriteByte('\'')
	b.WriteString(head)
	escaped := sbLikeEscape(&b, lit)
	b.WriteString(tail)
	b.WriteByte('\'')
	if escaped {
		b.WriteString(" ESCAPE '!'")
	}
	return b.String()
}

// sbWildcard builds the LIKE pattern literal of a wildcard: '*' becomes '%'.
func sbWildcard(w *wildcard) string {
	var b strings.Builder
	b.WriteByte('\'')
	escaped := false
	for i, lit := range w.lits {
		if i > 0 {
			b.WriteByte('%')
		}
		escaped = sbLikeEscape(&b, lit) || escaped
	}
	b.WriteByte('\'')
	if escaped {
		b.WriteString(" ESCAPE '!'")
	}
	return b.String()
}
