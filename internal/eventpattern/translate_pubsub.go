package eventpattern

import "strings"

// PubSubMaxFilterLen is the longest subscription filter Pub/Sub accepts.
const PubSubMaxFilterLen = 256

// ToPubSubFilter translates p to a Pub/Sub subscription filter over the
// message attributes crossbus writes: each context attribute and extension
// as a lower-case "ce-<name>" attribute (attributes.ce-type,
// attributes.ce-source, ...), datacontenttype as "content-type", as Google's
// CloudEvents binding for Pub/Sub specifies.
//
// Exact strings become "=", prefixes and trailing-'*' wildcards hasPrefix,
// exists ":" (and NOT ":"), anything-but a presence test with "!=" or NOT
// hasPrefix. Pub/Sub filters cannot see data, compare numbers, ignore case
// or match suffixes, so such conditions are dropped and exact is false.
// Conditions on extensions are never exact either: a numeric or boolean
// extension arrives as a string attribute. Filters longer than
// PubSubMaxFilterLen keep only the leading conditions of the top-level AND.
// If nothing remains, the error is ErrNotTranslatable.
func ToPubSubFilter(p *Pattern) (filter string, exact bool, err error) {
	return translateAttrs(p, attrTarget{cond: pubsubCond, exists: pubsubHas, missing: pubsubMissing, maxLen: PubSubMaxFilterLen})
}

// pubsubKey is the attribute that carries a CloudEvents attribute in Google's
// Pub/Sub binding: "content-type" for datacontenttype, "ce-<name>" for the
// rest.
func pubsubKey(name string) string {
	if name == "datacontenttype" {
		return "content-type"
	}
	return "ce-" + name
}

func pubsubAttr(name string) string { return "attributes." + pubsubKey(name) }

func pubsubHas(name string) *bexpr { return atom("attributes:" + pubsubKey(name)) }

func pubsubMissing(name string) *bexpr { return atom("NOT attributes:" + pubsubKey(name)) }

func pubsubEq(name, v string) *bexpr { return atom(pubsubAttr(name) + " = " + pubsubQuote(v)) }

func pubsubPrefix(name, v string) *bexpr {
	return atom("hasPrefix(" + pubsubAttr(name) + ", " + pubsubQuote(v) + ")")
}

// pubsubCond translates one value-list entry on attribute name.
func pubsubCond(name string, ext bool, c *cond) (*bexpr, bool) {
	switch c.kind {
	case cString:
		return pubsubEq(name, c.str), !ext
	case cPrefix:
		return pubsubPrefix(name, c.str), !ext
	case cWildcard:
		e, ok := wildcardAsPrefix(c.wc, pubsubHas(name), func(s string) *bexpr { return pubsubEq(name, s) },
			func(s string) *bexpr { return pubsubPrefix(name, s) })
		return e, ok && !ext
	case cAnythingBut:
		if ext {
			// A non-string extension arrives as a string that could equal
			// an excluded value; only presence is safe.
			return pubsubHas(name), false
		}
		a := c.ab
		switch a.kind {
		case abValues:
			kids := []*bexpr{pubsubHas(name)}
			for _, s := range a.strs {
				kids = append(kids, atom(pubsubAttr(name)+" != "+pubsubQuote(s)))
			}
			// Numbers never exclude a string attribute.
			return and(kids...), true
		case abPrefix:
			kids := []*bexpr{pubsubHas(name)}
			for _, p := range a.strs {
				kids = append(kids, atom("NOT "+pubsubPrefix(name, p).text))
			}
			return and(kids...), true
		}
		return pubsubHas(name), false
	}
	// suffix, equals-ignore-case, numeric, cidr, numbers, booleans, null
	return nil, false
}

// wildcardAsPrefix expresses wildcards of the forms "lit", "lit*" and "*"
// exactly, and others with a leading literal as a prefix superset.
func wildcardAsPrefix(w *wildcard, has *bexpr, eq, prefix func(string) *bexpr) (*bexpr, bool) {
	lits := w.lits
	switch {
	case len(lits) == 1:
		return eq(lits[0]), true
	case len(lits) == 2 && lits[1] == "":
		if lits[0] == "" {
			return has, true
		}
		return prefix(lits[0]), true
	case lits[0] != "":
		return prefix(lits[0]), false
	}
	return has, false
}

// pubsubQuote writes s as a filter string literal, escaping backslashes,
// quotes and non-printing characters.
func pubsubQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xF])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
