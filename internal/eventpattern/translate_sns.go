package eventpattern

// SNS filter policy limits.
const (
	// SNSMaxPolicyKeys is the most keys an SNS filter policy may have.
	SNSMaxPolicyKeys = 5
	// SNSMaxCombinations bounds the product of the sizes of a policy's
	// value lists.
	SNSMaxCombinations = 150
)

// ToSNSFilterPolicy translates p to an Amazon SNS subscription filter policy
// with the MessageBody scope, for events SNS carries in CloudEvents
// structured mode (the message body is the event's JSON form).
//
// Only what SNS's filter language and crossbus's pattern language share
// without a doubt is translated, so the policy is always a superset (exact
// is false) and routes keep matching locally: top-level conditions on the
// context attributes that are strings in the JSON form (id, source, type,
// subject, datacontenttype, dataschema) whose value lists hold only exact
// strings, prefixes, exists:true, anything-but lists of strings and
// anything-but a single prefix. Other fields, "$or", data and extensions
// are left out; of the rest, at most SNSMaxPolicyKeys keys are kept (type
// and source first) while the product of the list sizes stays within
// SNSMaxCombinations. If nothing remains, the error is ErrNotTranslatable.
func ToSNSFilterPolicy(p *Pattern) (policy []byte, exact bool, err error) {
	type entry struct {
		name string
		json []byte
		n    int
	}
	var entries []entry
	for _, pass := range []func(attrID) bool{
		func(a attrID) bool { return a == attrType },
		func(a attrID) bool { return a == attrSource },
		func(a attrID) bool { return a != attrType && a != attrSource },
	} {
		for _, f := range p.root.fields {
			if !pass(f.attr) || f.leaf == nil || !snsStringAttr(f.attr) {
				continue
			}
			if b, ok := snsLeaf(f.leaf); ok {
				entries = append(entries, entry{name: f.name, json: b, n: len(f.leaf.conds)})
			}
		}
	}
	b := []byte{'{'}
	keys, combos := 0, 1
	for _, e := range entries {
		if keys == SNSMaxPolicyKeys || combos*e.n > SNSMaxCombinations {
			continue
		}
		if keys > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.name)
		b = append(b, ':')
		b = append(b, e.json...)
		keys++
		combos *= e.n
	}
	if keys == 0 {
		return nil, false, ErrNotTranslatable
	}
	return append(b, '}'), false, nil
}

// snsStringAttr reports context attributes whose JSON form is always a
// string.
func snsStringAttr(a attrID) bool {
	switch a {
	case attrEventID, attrSource, attrType, attrSubject, attrDataContentType, attrDataSchema:
		return true
	}
	return false
}

// snsLeaf writes a value list SNS evaluates as the pattern does, or reports
// that it cannot.
func snsLeaf(l *leafNode) ([]byte, bool) {
	b := []byte{'['}
	for i := range l.conds {
		c := &l.conds[i]
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case c.kind == cString, c.kind == cPrefix, c.kind == cExists && c.exists:
			b = appendCond(b, c)
		case c.kind == cAnythingBut && c.ab.kind == abValues && len(c.ab.nums) == 0 && len(c.ab.strs) > 0:
			b = append(b, `{"anything-but":[`...)
			for j, s := range c.ab.strs {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, s)
			}
			b = append(b, "]}"...)
		case c.kind == cAnythingBut && c.ab.kind == abPrefix && len(c.ab.strs) == 1:
			b = append(b, `{"anything-but":{"prefix":`...)
			b = appendString(b, c.ab.strs[0])
			b = append(b, "}}"...)
		default:
			return nil, false
		}
	}
	return append(b, ']'), true
}
