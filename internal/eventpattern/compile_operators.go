package eventpattern

import (
	"fmt"
	"net/netip"
	"strings"
)

// This file compiles the operator objects of a value list, such as
// {"prefix": "x"} or {"numeric": [">", 0]}, with EventBridge's rules.

// single returns the only member of operator object i, or an error.
func (c *compiler) single(i int32, path, what string) (name string, v int32, err error) {
	nodes := c.t.nodes
	if nodes[i].end == i+1 {
		return "", 0, errAt(path, "%s must have exactly one key", what)
	}
	if nodes[i+2].end != nodes[i].end {
		return "", 0, errAt(path, "%s must have exactly one key", what)
	}
	return nodes[i+1].s, i + 2, nil
}

func (c *compiler) str(v int32) (string, bool) {
	n := &c.t.nodes[v]
	return strings.Clone(n.s), n.kind == kString
}

func (c *compiler) operator(i int32, path string) (cond, error) {
	nodes := c.t.nodes
	op, v, err := c.single(i, path, "an operator object")
	if err != nil {
		return cond{}, err
	}
	switch op {
	case "prefix", "suffix":
		return c.affix(op, v, path)
	case "equals-ignore-case":
		s, ok := c.str(v)
		if !ok {
			return cond{}, errAt(path, "equals-ignore-case expects a string")
		}
		return cond{kind: cEqualsFold, str: s}, nil
	case "wildcard":
		s, ok := c.str(v)
		if !ok {
			return cond{}, errAt(path, "wildcard expects a string")
		}
		w, rule := parseWildcard(s)
		if rule != "" {
			return cond{}, errAt(path, "%s", rule)
		}
		return cond{kind: cWildcard, wc: &w}, nil
	case "exists":
		switch nodes[v].kind {
		case kTrue:
			return cond{kind: cExists, exists: true}, nil
		case kFalse:
			return cond{kind: cExists, exists: false}, nil
		}
		return cond{}, errAt(path, "exists expects true or false")
	case "cidr":
		s, ok := c.str(v)
		if !ok {
			return cond{}, errAt(path, "cidr expects a string")
		}
		p, rule := parseCIDR(s)
		if rule != "" {
			return cond{}, errAt(path, "%s", rule)
		}
		return cond{kind: cCIDR, cidr: p, str: s}, nil
	case "numeric":
		return c.numeric(v, path)
	case "anything-but":
		return c.anythingBut(v, path)
	}
	return cond{}, errAt(path, "unknown operator %q", op)
}

// affix compiles prefix and suffix, plain or with equals-ignore-case.
func (c *compiler) affix(op string, v int32, path string) (cond, error) {
	plain, fold := cPrefix, cPrefixFold
	if op == "suffix" {
		plain, fold = cSuffix, cSuffixFold
	}
	if s, ok := c.str(v); ok {
		return cond{kind: plain, str: s}, nil
	}
	if c.t.nodes[v].kind == kObject {
		inner, iv, err := c.single(v, path, op+" object")
		if err != nil {
			return cond{}, err
		}
		s, ok := c.str(iv)
		if inner == "equals-ignore-case" && ok {
			return cond{kind: fold, str: s}, nil
		}
	}
	return cond{}, errAt(path, `%s expects a string or {"equals-ignore-case": string}`, op)
}

func parseCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Sprintf("invalid CIDR %q", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return p, fmt.Sprintf("invalid CIDR %q: IPv4-mapped prefix shorter than 96 bits", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	// EventBridge rejects host-sized masks; an exact value matches one address.
	if p.Addr().Is4() && p.Bits() > 31 || p.Addr().Is6() && p.Bits() > 127 {
		return p, fmt.Sprintf("invalid CIDR %q: mask must be shorter than the address (use an exact value for one address)", s)
	}
	return p.Masked(), ""
}

const numericRule = "numeric expects operator/value pairs"

func (c *compiler) numeric(v int32, path string) (cond, error) {
	nodes := c.t.nodes
	if nodes[v].kind != kArray {
		return cond{}, errAt(path, numericRule)
	}
	var items []int32
	for i := v + 1; i < nodes[v].end; i = nodes[i].end {
		items = append(items, i)
	}
	if len(items) != 2 && len(items) != 4 {
		return cond{}, errAt(path, numericRule)
	}
	r := numRange{nops: len(items) / 2}
	for k := 0; k < len(items); k += 2 {
		opn, valn := &nodes[items[k]], &nodes[items[k+1]]
		if opn.kind != kString || valn.kind != kNumber {
			return cond{}, errAt(path, numericRule)
		}
		op, f := opn.s, valn.num
		switch op {
		case "=", "<", "<=", ">", ">=":
		default:
			return cond{}, errAt(path, "numeric operator %q is not one of =, <, <=, >, >=", op)
		}
		if !(f >= -numLimit && f <= numLimit) {
			return cond{}, errAt(path, "numeric value %s is outside -5e9..5e9", valn.s)
		}
		r.ops[k/2], r.vals[k/2] = strings.Clone(op), f
		q := quantize(f)
		switch op {
		case "=":
			if len(items) != 2 {
				return cond{}, errAt(path, `numeric "=" takes exactly one value`)
			}
			r.lo, r.hi, r.hasLo, r.hasHi = q, q, true, true
		case ">", ">=":
			if k != 0 {
				return cond{}, errAt(path, `numeric range must be a lower bound (">" or ">=") followed by an upper bound ("<" or "<=")`)
			}
			r.lo, r.hasLo, r.loOpen = q, true, op == ">"
		case "<", "<=":
			if k == 0 && len(items) == 4 {
				return cond{}, errAt(path, `numeric range must be a lower bound (">" or ">=") followed by an upper bound ("<" or "<=")`)
			}
			r.hi, r.hasHi, r.hiOpen = q, true, op == "<"
		}
	}
	if len(items) == 4 && r.lo >= r.hi {
		return cond{}, errAt(path, "numeric range is empty: the lower bound must be below the upper bound")
	}
	return cond{kind: cNumeric, rng: r}, nil
}

const anythingButRule = "anything-but expects a string, a number, a list of strings or of numbers, or an object with prefix, suffix, equals-ignore-case or wildcard"

func (c *compiler) anythingBut(v int32, path string) (cond, error) {
	nodes := c.t.nodes
	ab := &anythingBut{kind: abValues}
	addValue := func(i int32) bool {
		switch n := &nodes[i]; n.kind {
		case kString:
			ab.strs = append(ab.strs, strings.Clone(n.s))
		case kNumber:
			if !(n.num >= -numLimit && n.num <= numLimit) {
				return false
			}
			ab.nums = append(ab.nums, newNumber(n.num))
		default:
			return false
		}
		return true
	}
	switch nodes[v].kind {
	case kString, kNumber:
		if !addValue(v) {
			return cond{}, errAt(path, "anything-but number must be within -5e9..5e9")
		}
	case kArray:
		ab.list = true
		if nodes[v].end == v+1 {
			return cond{}, errAt(path, "anything-but list must not be empty")
		}
		for i := v + 1; i < nodes[v].end; i = nodes[i].end {
			if !addValue(i) {
				return cond{}, errAt(path, "anything-but list must contain only strings or only numbers (within -5e9..5e9)")
			}
		}
		if len(ab.strs) > 0 && len(ab.nums) > 0 {
			return cond{}, errAt(path, "anything-but list must contain only strings or only numbers (within -5e9..5e9)")
		}
	case kObject:
		if err := c.anythingButObject(ab, v, path); err != nil {
			return cond{}, err
		}
	default:
		return cond{}, errAt(path, anythingButRule)
	}
	return cond{kind: cAnythingBut, ab: ab}, nil
}

func (c *compiler) anythingButObject(ab *anythingBut, v int32, path string) error {
	nodes := c.t.nodes
	op, iv, err := c.single(v, path, "anything-but object")
	if err != nil {
		return err
	}
	// strings collects a string or a non-empty list of strings.
	strs := func() ([]string, bool) {
		if s, ok := c.str(iv); ok {
			return []string{s}, true
		}
		if nodes[iv].kind != kArray || nodes[iv].end == iv+1 {
			return nil, false
		}
		ab.list = true
		var out []string
		for i := iv + 1; i < nodes[iv].end; i = nodes[i].end {
			s, ok := c.str(i)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	switch op {
	case "prefix", "suffix":
		// A string, or (as Event Ruler accepts) a non-empty list of them.
		ss, ok := strs()
		if ok {
			for _, s := range ss {
				ok = ok && s != ""
			}
		}
		if !ok {
			return errAt(path, "anything-but %s expects a non-empty string or a non-empty list of them", op)
		}
		ab.kind, ab.strs = abPrefix, ss
		if op == "suffix" {
			ab.kind = abSuffix
		}
	case "equals-ignore-case":
		ss, ok := strs()
		if !ok {
			return errAt(path, "anything-but equals-ignore-case expects a string or a non-empty list of strings")
		}
		ab.kind, ab.strs = abFold, ss
	case "wildcard":
		ss, ok := strs()
		if !ok {
			return errAt(path, "anything-but wildcard expects a string or a non-empty list of strings")
		}
		ab.kind = abWildcard
		for _, s := range ss {
			w, rule := parseWildcard(s)
			if rule != "" {
				return errAt(path, "%s", rule)
			}
			ab.wcs = append(ab.wcs, w)
		}
	default:
		return errAt(path, anythingButRule)
	}
	return nil
}
