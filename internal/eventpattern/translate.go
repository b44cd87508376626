package eventpattern

import (
	"errors"
	"strings"
)

// Push-down translators turn a pattern into a provider's native filter.
// Each returns the filter text and whether it selects exactly the events the
// pattern matches (exact) or a superset of them. A superset filter still
// saves traffic: the caller keeps matching locally. When nothing of the
// pattern can be expressed natively, the translator returns
// ErrNotTranslatable and the caller subscribes unfiltered.
//
// The attribute-based translators (Pub/Sub, Service Bus) build a superset by
// replacing every condition they cannot express with TRUE. That is sound
// because patterns are monotone: AND and OR of conditions, no negation of a
// composite. Negative operators (anything-but, exists:false) are translated
// only to native forms with the same meaning for missing attributes.

// ErrNotTranslatable reports a pattern no native filter can narrow down.
var ErrNotTranslatable = errors.New("pattern: not translatable to a native filter")

// bexpr is a boolean filter expression. A nil *bexpr means TRUE: a condition
// dropped from the native filter.
type bexpr struct {
	op   byte // 'a' AND, 'o' OR, 0 for an atom
	kids []*bexpr
	text string // atom text
}

func atom(text string) *bexpr { return &bexpr{text: text} }

// and joins conjuncts, dropping TRUE ones.
func and(kids ...*bexpr) *bexpr {
	var out []*bexpr
	for _, k := range kids {
		switch {
		case k == nil:
		case k.op == 'a':
			out = append(out, k.kids...)
		default:
			out = append(out, k)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return &bexpr{op: 'a', kids: out}
}

// or joins disjuncts; any TRUE disjunct makes the whole TRUE.
func or(kids ...*bexpr) *bexpr {
	var out []*bexpr
	for _, k := range kids {
		switch {
		case k == nil:
			return nil
		case k.op == 'o':
			out = append(out, k.kids...)
		default:
			out = append(out, k)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return &bexpr{op: 'o', kids: out}
}

// render prints e, parenthesizing every AND inside an OR and every OR
// inside an AND, so that AND and OR never mix without parentheses.
func (e *bexpr) render(b *strings.Builder) {
	if e.op == 0 {
		b.WriteString(e.text)
		return
	}
	sep := " AND "
	if e.op == 'o' {
		sep = " OR "
	}
	for i, k := range e.kids {
		if i > 0 {
			b.WriteString(sep)
		}
		if k.op != 0 && k.op != e.op {
			b.WriteByte('(')
			k.render(b)
			b.WriteByte(')')
		} else {
			k.render(b)
		}
	}
}

func (e *bexpr) String() string {
	var b strings.Builder
	e.render(&b)
	return b.String()
}

// attrTarget describes how a provider exposes the event's attributes.
type attrTarget struct {
	// cond translates one value-list entry on an attribute; ok=false means
	// the entry can only be approximated, so the translation is a superset.
	cond func(name string, ext bool, c *cond) (e *bexpr, exact bool)
	// exists and missing test for the attribute's presence.
	exists, missing func(name string) *bexpr
	// in, when set, tests membership in two or more exact strings.
	in func(name string, values []string) *bexpr
	// maxLen is the native filter's length limit in bytes.
	maxLen int
}

// isAttrName reports whether name can be a CloudEvents attribute (lower-case
// letters and digits), so that it has a native counterpart.
func isAttrName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// translateAttrs translates the top level of a pattern to a filter over
// event attributes. Conditions on data, on nested fields and on names that
// cannot be attributes become TRUE.
func translateAttrs(p *Pattern, t attrTarget) (string, bool, error) {
	e, exact := t.obj(p.root)
	if e == nil {
		return "", false, ErrNotTranslatable
	}
	s := e.String()
	if len(s) <= t.maxLen {
		return s, exact, nil
	}
	// Too long: keep the leading conjuncts that fit (a superset).
	if e.op != 'a' {
		return "", false, ErrNotTranslatable
	}
	for n := len(e.kids) - 1; n > 0; n-- {
		if s := and(e.kids[:n]...).String(); len(s) <= t.maxLen {
			return s, false, nil
		}
	}
	return "", false, ErrNotTranslatable
}

// obj translates a top-level pattern object (or "$or" alternative).
func (t attrTarget) obj(o *objNode) (*bexpr, bool) {
	exact := true
	var kids []*bexpr
	// Most selective attributes first, so that truncation keeps them.
	for _, pass := range []func(f *fieldNode) bool{
		func(f *fieldNode) bool { return f.name == "type" },
		func(f *fieldNode) bool { return f.name == "source" },
		func(f *fieldNode) bool { return f.name != "type" && f.name != "source" },
	} {
		for _, f := range o.fields {
			if !pass(f) {
				continue
			}
			e, ok := t.field(f)
			exact = exact && ok
			kids = append(kids, e)
		}
	}
	if o.or != nil {
		alts := make([]*bexpr, len(o.or))
		for i, alt := range o.or {
			var ok bool
			alts[i], ok = t.obj(alt)
			exact = exact && ok
			if alts[i] == nil {
				exact = false
			}
		}
		kids = append(kids, or(alts...))
	}
	return and(kids...), exact
}

// field translates one top-level field; nil with exact=false when it
// cannot be expressed.
func (t attrTarget) field(f *fieldNode) (*bexpr, bool) {
	if f.leaf == nil || f.attr == attrData || !isAttrName(f.name) {
		return nil, false
	}
	if f.attr == attrTime && !f.leaf.onlyExists {
		// The wire format of time may differ from its JSON form.
		return nil, false
	}
	ext := f.attr == attrExt
	exact := true
	var alts []*bexpr
	useIn := t.in != nil && len(f.leaf.strs)+len(f.leaf.strSet) >= 2
	if useIn {
		var vals []string
		for _, c := range f.leaf.conds {
			if c.kind == cString {
				vals = append(vals, c.str)
			}
		}
		alts = append(alts, t.in(f.name, vals))
		exact = !ext
	}
	for i := range f.leaf.conds {
		c := &f.leaf.conds[i]
		if useIn && c.kind == cString {
			continue
		}
		var e *bexpr
		ok := true
		switch {
		case c.kind == cExists && c.exists:
			e = t.exists(f.name)
		case c.kind == cExists:
			e = t.missing(f.name)
		default:
			e, ok = t.cond(f.name, ext, c)
		}
		if e == nil {
			return nil, false
		}
		exact = exact && ok
		alts = append(alts, e)
	}
	return or(alts...), exact
}
