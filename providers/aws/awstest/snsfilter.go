package awstest

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// SNS subscription filter policies (FilterPolicy, FilterPolicyScope), as the
// SNS developer guide describes them: every key of the policy must match
// (AND), a key matches when any entry of its value list does (OR), "$or"
// joins alternative policies. Entries: exact strings, numbers, true, false
// and null; {"prefix"}, {"suffix"}, {"equals-ignore-case"}; {"anything-but"}
// with a value, a list, or {"prefix"} / {"suffix"}; {"numeric"} with one or
// two operator/value pairs; {"exists"}; {"cidr"}. The MessageAttributes
// scope (the default) reads String, String.Array and Number attributes
// (Binary ones are ignored) and takes no nested keys; the MessageBody scope
// reads the body as a JSON object, with nested keys, and matches an array
// when any element does. A key the message lacks matches only
// {"exists": false}. Policies may have at most 5 keys and 150 combinations
// of values.

type snsPolicy struct {
	fields map[string]snsPolicyField
	or     []*snsPolicy
}

type snsPolicyField struct {
	leaf   []snsCond
	nested *snsPolicy
}

type snsCond struct {
	kind string // "exact", "prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists", "cidr"
	val  any    // exact: string, float64, bool or nil
	str  string
	// anything-but
	vals   []any
	abKind string // "", "prefix", "suffix"
	// numeric
	ops  []string
	nums []float64
	// exists
	exists bool
	cidr   netip.Prefix
}

// compileSNSPolicy checks a filter policy as SNS does when it is set.
func compileSNSPolicy(src, scope string) (*snsPolicy, *apiError) {
	body := scope == "MessageBody"
	if scope != "" && scope != "MessageAttributes" && !body {
		return nil, snsParam("FilterPolicyScope: Invalid value [%s]. Please use either MessageBody or MessageAttributes", scope)
	}
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, snsParam("Filter policy: not valid JSON")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, snsParam("Filter policy: the policy must be a JSON object")
	}
	p, keys, combos, aerr := compileSNSObject(m, body)
	if aerr != nil {
		return nil, aerr
	}
	if keys > 5 {
		return nil, snsParam("Filter policy: Filter policy can not have more than 5 keys")
	}
	if combos > 150 {
		return nil, snsParam("Filter policy: Filter policy is too complex")
	}
	return p, nil
}

// compileSNSObject compiles a policy object; it returns the keys it uses
// and its number of value combinations.
func compileSNSObject(m map[string]any, body bool) (*snsPolicy, int, int, *apiError) {
	if len(m) == 0 {
		return nil, 0, 0, snsParam("Filter policy: Empty objects are not allowed")
	}
	p := &snsPolicy{fields: map[string]snsPolicyField{}}
	keys, combos := 0, 1
	for k, v := range m {
		if k == "$or" {
			alts, ok := v.([]any)
			if !ok || len(alts) < 2 {
				return nil, 0, 0, snsParam("Filter policy: $or needs an array of at least two objects")
			}
			sum := 0
			for _, a := range alts {
				am, ok := a.(map[string]any)
				if !ok {
					return nil, 0, 0, snsParam("Filter policy: $or needs an array of at least two objects")
				}
				sub, k2, c2, aerr := compileSNSObject(am, body)
				if aerr != nil {
					return nil, 0, 0, aerr
				}
				p.or = append(p.or, sub)
				keys = max(keys, k2)
				sum += c2
			}
			combos *= sum
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			if !body {
				return nil, 0, 0, snsParam("Filter policy: Filter policy scope MessageAttributes does not support nested filter policy")
			}
			sub, k2, c2, aerr := compileSNSObject(x, body)
			if aerr != nil {
				return nil, 0, 0, aerr
			}
			p.fields[k] = snsPolicyField{nested: sub}
			keys += k2
			combos *= c2
		case []any:
			if len(x) == 0 {
				return nil, 0, 0, snsParam("Filter policy: Empty arrays are not allowed")
			}
			var conds []snsCond
			for _, e := range x {
				c, aerr := compileSNSCond(e)
				if aerr != nil {
					return nil, 0, 0, aerr
				}
				conds = append(conds, c)
			}
			p.fields[k] = snsPolicyField{leaf: conds}
			keys++
			combos *= len(x)
		default:
			return nil, 0, 0, snsParam("Filter policy: Match value must be String, number, true, false, or null")
		}
	}
	return p, keys, combos, nil
}

func snsScalar(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool, nil:
		return x, true
	case json.Number:
		f, err := x.Float64()
		if err != nil || math.Abs(f) > 1e9 {
			return nil, false
		}
		return f, true
	}
	return nil, false
}

func compileSNSCond(e any) (snsCond, *apiError) {
	bad := func(format string, args ...any) (snsCond, *apiError) {
		return snsCond{}, snsParam("Filter policy: "+format, args...)
	}
	if v, ok := snsScalar(e); ok {
		return snsCond{kind: "exact", val: v}, nil
	}
	m, ok := e.(map[string]any)
	if !ok || len(m) != 1 {
		return bad("Match value must be String, number, true, false, or null")
	}
	for op, arg := range m {
		switch op {
		case "prefix", "suffix", "equals-ignore-case":
			s, ok := arg.(string)
			if !ok {
				return bad("%s match pattern must be a string", op)
			}
			return snsCond{kind: op, str: s}, nil
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return bad("exists match pattern must be either true or false")
			}
			return snsCond{kind: op, exists: b}, nil
		case "cidr":
			s, _ := arg.(string)
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				return bad("Malformed CIDR, one '/' required")
			}
			return snsCond{kind: op, cidr: pfx.Masked()}, nil
		case "numeric":
			list, ok := arg.([]any)
			if !ok || (len(list) != 2 && len(list) != 4) {
				return bad("Value of numeric must be an array of one or two operator/value pairs")
			}
			c := snsCond{kind: op}
			for i := 0; i < len(list); i += 2 {
				o, _ := list[i].(string)
				n, ok := list[i+1].(json.Number)
				f, err := n.Float64()
				if !ok || err != nil || math.Abs(f) > 1e9 {
					return bad("Value of numeric must be numbers between -1e9 and 1e9")
				}
				switch o {
				case "=", "<", "<=", ">", ">=":
				default:
					return bad("Unrecognized numeric range operator: %s", o)
				}
				c.ops, c.nums = append(c.ops, o), append(c.nums, f)
			}
			return c, nil
		case "anything-but":
			c := snsCond{kind: op}
			switch x := arg.(type) {
			case map[string]any:
				if len(x) != 1 {
					return bad("anything-but takes one prefix or suffix")
				}
				for k, v := range x {
					s, ok := v.(string)
					if (k != "prefix" && k != "suffix") || !ok {
						return bad("Unsupported anything-but pattern: %s", k)
					}
					c.abKind, c.str = k, s
				}
			case []any:
				for _, v := range x {
					s, ok := snsScalar(v)
					if !ok {
						return bad("anything-but list must hold strings or numbers")
					}
					c.vals = append(c.vals, s)
				}
			default:
				s, ok := snsScalar(x)
				if !ok {
					return bad("anything-but takes a value, a list, a prefix or a suffix")
				}
				c.vals = []any{s}
			}
			return c, nil
		}
		return bad("Unrecognized match type %s", op)
	}
	return bad("Match value must be String, number, true, false, or null")
}

// matchAttributes evaluates the policy over message attributes.
func (p *snsPolicy) matchAttributes(attrs map[string]msgAttr) bool {
	for k, f := range p.fields {
		a, ok := attrs[k]
		var vals []any
		if ok {
			vals, ok = attributeValues(a)
		}
		if !matchField(f.leaf, vals, ok) {
			return false
		}
	}
	return matchOr(p.or, func(q *snsPolicy) bool { return q.matchAttributes(attrs) })
}

// attributeValues is what a message attribute holds for filtering; ok is
// false for the types SNS ignores.
func attributeValues(a msgAttr) ([]any, bool) {
	if a.StringValue == nil {
		return nil, false
	}
	s := *a.StringValue
	switch base, _, _ := strings.Cut(a.DataType, "."); {
	case a.DataType == "String.Array":
		var arr []any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if dec.Decode(&arr) != nil {
			return nil, false
		}
		out := make([]any, 0, len(arr))
		for _, v := range arr {
			if x, ok := snsScalar(v); ok {
				out = append(out, x)
			}
		}
		return out, true
	case base == "String":
		return []any{s}, true
	case base == "Number":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, false
		}
		return []any{f}, true
	}
	return nil, false // Binary
}

// matchBody evaluates the policy over a JSON object.
func (p *snsPolicy) matchBody(obj map[string]any) bool {
	for k, f := range p.fields {
		v, ok := obj[k]
		if f.nested != nil {
			m, isObj := v.(map[string]any)
			if !isObj || !f.nested.matchBody(m) {
				return false
			}
			continue
		}
		var vals []any
		if ok {
			if arr, isArr := v.([]any); isArr {
				for _, e := range arr {
					if x, ok := snsScalar(e); ok {
						vals = append(vals, x)
					}
				}
			} else if x, ok := snsScalar(v); ok {
				vals = []any{x}
			}
		}
		if !matchField(f.leaf, vals, ok) {
			return false
		}
	}
	return matchOr(p.or, func(q *snsPolicy) bool { return q.matchBody(obj) })
}

func matchOr(alts []*snsPolicy, match func(*snsPolicy) bool) bool {
	if len(alts) == 0 {
		return true
	}
	for _, a := range alts {
		if match(a) {
			return true
		}
	}
	return false
}

// matchField reports whether any condition matches: exists by the key's
// presence, the others by any of the key's values.
func matchField(conds []snsCond, vals []any, present bool) bool {
	for _, c := range conds {
		if c.kind == "exists" {
			if c.exists == present {
				return true
			}
			continue
		}
		for _, v := range vals {
			if c.match(v) {
				return true
			}
		}
	}
	return false
}

func (c snsCond) match(v any) bool {
	s, isStr := v.(string)
	f, isNum := v.(float64)
	switch c.kind {
	case "exact":
		if cf, ok := c.val.(float64); ok {
			return isNum && equal5(cf, f)
		}
		return c.val == v
	case "prefix":
		return isStr && strings.HasPrefix(s, c.str)
	case "suffix":
		return isStr && strings.HasSuffix(s, c.str)
	case "equals-ignore-case":
		return isStr && strings.EqualFold(s, c.str)
	case "cidr":
		a, err := netip.ParseAddr(s)
		return isStr && err == nil && c.cidr.Contains(a)
	case "numeric":
		if !isNum {
			return false
		}
		for i, op := range c.ops {
			n := c.nums[i]
			ok := map[string]bool{"=": equal5(f, n), "<": f < n && !equal5(f, n), "<=": f < n || equal5(f, n),
				">": f > n && !equal5(f, n), ">=": f > n || equal5(f, n)}[op]
			if !ok {
				return false
			}
		}
		return true
	case "anything-but":
		switch c.abKind {
		case "prefix":
			return isStr && !strings.HasPrefix(s, c.str)
		case "suffix":
			return isStr && !strings.HasSuffix(s, c.str)
		}
		for _, x := range c.vals {
			if xf, ok := x.(float64); ok && isNum && equal5(xf, f) || x == v {
				return false
			}
		}
		return true
	}
	return false
}

// equal5 compares numbers with the five decimal digits SNS keeps.
func equal5(a, b float64) bool { return math.Round(a*1e5) == math.Round(b*1e5) }

// compileFilter compiles the filter policy of subscription attributes
// (nil without one), refusing a policy SNS would refuse.
func compileFilter(attrs map[string]string) (*snsPolicy, *apiError) {
	src := attrs["FilterPolicy"]
	if src == "" {
		if scope := attrs["FilterPolicyScope"]; scope != "" && scope != "MessageAttributes" && scope != "MessageBody" {
			return nil, snsParam("FilterPolicyScope: Invalid value [%s]. Please use either MessageBody or MessageAttributes", scope)
		}
		return nil, nil
	}
	return compileSNSPolicy(src, attrs["FilterPolicyScope"])
}

// filterAccepts reports whether a subscription takes a message.
func (sub *subscription) filterAccepts(p *snsPublish) bool {
	if sub.filter == nil {
		return true
	}
	if sub.attrs["FilterPolicyScope"] != "MessageBody" {
		return sub.filter.matchAttributes(p.attrs)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(p.message)))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return false // a body that is not a JSON object matches no body policy
	}
	return sub.filter.matchBody(obj)
}
