package eventpattern

import (
	"github.com/cloudevents/sdk-go/v2/event"
)

// Matching follows EventBridge:
//
//   - Every field named in a pattern object must match (AND); a value list
//     matches when any of its entries matches (OR); "$or" requires one of
//     its alternatives to match.
//   - Comparison operators apply to leaf values (strings, numbers, booleans,
//     null). An array in the event matches when any of its elements does;
//     nested arrays are flattened.
//   - A pattern object applied to an array of objects is matched against
//     each element in turn, so the fields of one pattern object must all
//     match within the same element ("array consistency").
//   - A field is missing when the event has no leaf value at its path: it is
//     absent, or its value is an object, an empty array or an array holding
//     no leaves. {"exists": false} matches exactly the missing fields and
//     {"exists": true} every present one (null included).

// Match reports whether the event matches the pattern.
func (p *Pattern) Match(ev *event.Event) bool {
	if ev == nil {
		return false
	}
	if p.fast != nil {
		if ec, ok := ev.Context.(*event.EventContextV1); ok && ec != nil {
			return p.fast.leaf.matchString(fastAttr(ec, p.fast.attr))
		}
	}
	d := getDoc()
	d.Reset(ev)
	ok := d.evalObj(p.root, d.root, -1)
	putDoc(d)
	return ok
}

// MatchJSON reports whether the JSON object doc (typically a CloudEvent in
// structured JSON form) matches the pattern. It fails only if doc is not a
// valid JSON object.
func (p *Pattern) MatchJSON(doc []byte) (bool, error) {
	d := getDoc()
	defer putDoc(d)
	if err := d.ResetJSON(doc); err != nil {
		return false, err
	}
	return d.evalObj(p.root, d.root, -1), nil
}

// MatchDoc reports whether the decoded event d matches the pattern. It
// returns false for a Doc that holds no event.
func (p *Pattern) MatchDoc(d *Doc) bool {
	if !d.holdsEvent() {
		return false
	}
	return d.evalObj(p.root, d.root, -1)
}

// evalObj matches pattern object o against value v. The field at index skip
// (-1 for none) is known to match already and is not evaluated.
func (d *Doc) evalObj(o *objNode, v int32, skip int) bool {
	if v >= 0 && d.t.nodes[v].kind == kArray {
		end := d.t.nodes[v].end
		if v+1 == end {
			return d.evalObj(o, refMissing, skip)
		}
		for i := v + 1; i < end; i = d.t.nodes[i].end {
			if d.evalObj(o, i, skip) {
				return true
			}
		}
		return false
	}
	for i, f := range o.fields {
		if i == skip {
			continue
		}
		c := d.field(v, f.name, f.attr)
		if f.leaf != nil {
			if !d.evalLeaf(f.leaf, c) {
				return false
			}
		} else if !d.evalObj(f.obj, c, -1) {
			return false
		}
	}
	if o.or == nil {
		return true
	}
	for _, alt := range o.or {
		if d.evalObj(alt, v, -1) {
			return true
		}
	}
	return false
}

// evalLeaf matches a value list against the value v of a field.
func (d *Doc) evalLeaf(l *leafNode, v int32) bool {
	if v < 0 {
		return l.ifMissing
	}
	n := &d.t.nodes[v]
	switch n.kind {
	case kObject:
		return l.ifMissing
	case kArray:
		found, hasLeaf := d.evalLeafArray(l, v)
		return found || !hasLeaf && l.ifMissing
	}
	return l.matchValue(n)
}

// evalLeafArray matches a value list against the leaves of array v. It
// also reports whether the array (flattened) holds any leaf at all.
func (d *Doc) evalLeafArray(l *leafNode, v int32) (found, hasLeaf bool) {
	end := d.t.nodes[v].end
	for i := v + 1; i < end; i = d.t.nodes[i].end {
		n := &d.t.nodes[i]
		switch n.kind {
		case kObject:
			continue
		case kArray:
			f, h := d.evalLeafArray(l, i)
			if f {
				return true, true
			}
			hasLeaf = hasLeaf || h
			continue
		}
		hasLeaf = true
		if l.onlyExists {
			// exists:true matches any leaf; exists:false only the absence of one.
			return len(l.others) > 0, true
		}
		if l.matchValue(n) {
			return true, true
		}
	}
	return false, hasLeaf
}

// matchValue matches a value list against one leaf value.
// matchString reports whether an exact-strings leaf holds s (s, ok from
// fastAttr: a missing attribute matches nothing, as in a document).
func (l *leafNode) matchString(s string, ok bool) bool {
	if !ok {
		return false
	}
	if l.strSet != nil {
		_, found := l.strSet[s]
		return found
	}
	for _, v := range l.strs {
		if v == s {
			return true
		}
	}
	return false
}

// fastAttr reads a plain string attribute of a 1.0 context; ok is false
// when it is absent (an empty id or type counts as absent, as in a Doc).
func fastAttr(ec *event.EventContextV1, attr attrID) (string, bool) {
	switch attr {
	case attrEventID:
		return ec.ID, ec.ID != ""
	case attrType:
		return ec.Type, ec.Type != ""
	case attrSubject:
		if ec.Subject == nil {
			return "", false
		}
		return *ec.Subject, *ec.Subject != ""
	case attrDataContentType:
		if ec.DataContentType == nil {
			return "", false
		}
		return *ec.DataContentType, *ec.DataContentType != ""
	}
	return "", false
}

func (l *leafNode) matchValue(n *node) bool {
	if n.kind == kString {
		if l.strSet != nil {
			if _, ok := l.strSet[n.s]; ok {
				return true
			}
		} else {
			for _, s := range l.strs {
				if s == n.s {
					return true
				}
			}
		}
	}
	for i := range l.others {
		if l.others[i].match(n) {
			return true
		}
	}
	return false
}
