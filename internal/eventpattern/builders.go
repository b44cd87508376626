package eventpattern

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// Builders write patterns in Go for the common cases. Each one builds the
// JSON pattern and compiles it, so a built pattern is exactly the pattern
// Compile returns for the same JSON (compare their String forms). Builders
// are meant for values known when the program is written: like
// regexp.MustCompile they panic on input that makes an invalid pattern (for
// example an empty value list or a numeric bound outside -5e9..5e9).
//
//	p := pattern.And(
//		pattern.TypeIs("com.example.order.created"),
//		pattern.SourcePrefix("/shop/"),
//		pattern.Field("data", "amount").Numeric(">", 100),
//	)
//	// same as pattern.MustCompile(`{"type":["com.example.order.created"],
//	//   "source":[{"prefix":"/shop/"}],"data":{"amount":[{"numeric":[">",100]}]}}`)

// TypeIs matches events whose type is one of types.
func TypeIs(types ...string) *Pattern { return Field("type").Equals(strs(types)...) }

// TypePrefix matches events whose type starts with prefix.
func TypePrefix(prefix string) *Pattern { return Field("type").Prefix(prefix) }

// SourceIs matches events whose source is one of sources.
func SourceIs(sources ...string) *Pattern { return Field("source").Equals(strs(sources)...) }

// SourcePrefix matches events whose source starts with prefix.
func SourcePrefix(prefix string) *Pattern { return Field("source").Prefix(prefix) }

// SubjectIs matches events whose subject is one of subjects.
func SubjectIs(subjects ...string) *Pattern { return Field("subject").Equals(strs(subjects)...) }

// SubjectPrefix matches events whose subject starts with prefix.
func SubjectPrefix(prefix string) *Pattern { return Field("subject").Prefix(prefix) }

// FieldRef names a field of the event's JSON form by its path, such as
// Field("type") or Field("data", "customer", "tier").
type FieldRef struct{ path []string }

// Field returns a reference to the field at path. It panics if path is empty.
func Field(path ...string) FieldRef {
	if len(path) == 0 {
		panic("pattern: Field needs a path")
	}
	return FieldRef{path: slices.Clone(path)}
}

// Equals matches when the field equals one of values: strings, numbers
// (any Go integer or float type), booleans or nil (JSON null).
func (f FieldRef) Equals(values ...any) *Pattern { return f.build(values...) }

// Prefix matches string values that start with prefix.
func (f FieldRef) Prefix(prefix string) *Pattern { return f.op("prefix", prefix) }

// Suffix matches string values that end with suffix.
func (f FieldRef) Suffix(suffix string) *Pattern { return f.op("suffix", suffix) }

// EqualsIgnoreCase matches string values equal to s, ignoring case.
func (f FieldRef) EqualsIgnoreCase(s string) *Pattern { return f.op("equals-ignore-case", s) }

// Wildcard matches string values against w, where '*' matches any run of
// characters ('\*' is a literal star).
func (f FieldRef) Wildcard(w string) *Pattern { return f.op("wildcard", w) }

// AnythingBut matches present values that are none of values (all strings
// or all numbers).
func (f FieldRef) AnythingBut(values ...any) *Pattern {
	if len(values) == 1 {
		return f.op("anything-but", values[0])
	}
	return f.op("anything-but", values)
}

// Numeric matches numbers v for which "v op bound" holds; op is one of
// "=", "<", "<=", ">", ">=".
func (f FieldRef) Numeric(op string, bound float64) *Pattern {
	return f.op("numeric", []any{op, bound})
}

// Between matches numbers v with lo <= v < hi.
func (f FieldRef) Between(lo, hi float64) *Pattern {
	return f.op("numeric", []any{">=", lo, "<", hi})
}

// Exists matches when the field is present (true) or missing (false).
func (f FieldRef) Exists(present bool) *Pattern { return f.op("exists", present) }

// CIDR matches IP address strings inside the network cidr.
func (f FieldRef) CIDR(cidr string) *Pattern { return f.op("cidr", cidr) }

func (f FieldRef) op(name string, operand any) *Pattern {
	return f.build(map[string]any{name: operand})
}

func (f FieldRef) build(values ...any) *Pattern {
	var v any = values
	for i := len(f.path) - 1; i >= 0; i-- {
		v = map[string]any{f.path[i]: v}
	}
	return compileValue(v)
}

// And matches events every pattern matches. Conditions on different fields
// are merged into one object; "$or" lists of two patterns are combined by
// distributing one over the other. It panics if two patterns constrain the
// same field with value lists, which the pattern language cannot intersect.
func And(patterns ...*Pattern) *Pattern {
	if len(patterns) == 0 {
		panic("pattern: And needs at least one pattern")
	}
	acc := decodeTree(patterns[0])
	for _, p := range patterns[1:] {
		acc = mergeAnd(acc, decodeTree(p), "")
	}
	return compileValue(acc)
}

// Or matches events at least one pattern matches, through "$or". Or of one
// pattern returns it.
func Or(patterns ...*Pattern) *Pattern {
	switch len(patterns) {
	case 0:
		panic("pattern: Or needs at least one pattern")
	case 1:
		return patterns[0]
	}
	alts := make([]any, len(patterns))
	for i, p := range patterns {
		alts[i] = decodeTree(p)
	}
	return compileValue(map[string]any{"$or": alts})
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func decodeTree(p *Pattern) map[string]any {
	dec := json.NewDecoder(bytes.NewReader([]byte(p.src)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic("pattern: decoding a compiled pattern: " + err.Error())
	}
	return m
}

func mergeAnd(a, b map[string]any, path string) map[string]any {
	out := maps.Clone(a)
	for k, bv := range b {
		av, ok := out[k]
		if !ok {
			out[k] = bv
			continue
		}
		if k == "$or" {
			// (a1 | a2) & (b1 | b2) = (a1 & (b1 | b2)) | (a2 & (b1 | b2))
			aAlts := av.([]any)
			merged := make([]any, len(aAlts))
			for i, alt := range aAlts {
				merged[i] = mergeAnd(alt.(map[string]any), map[string]any{"$or": bv}, path)
			}
			out[k] = merged
			continue
		}
		am, aObj := av.(map[string]any)
		bm, bObj := bv.(map[string]any)
		if !aObj || !bObj {
			panic(fmt.Sprintf("pattern: And: field %q is constrained by more than one pattern", joinPath(path, k)))
		}
		out[k] = mergeAnd(am, bm, joinPath(path, k))
	}
	return out
}

func compileValue(v any) *Pattern {
	b, err := json.Marshal(normalize(v))
	if err != nil {
		panic("pattern: building a pattern: " + err.Error())
	}
	p, err := Compile(b)
	if err != nil {
		panic("pattern: building a pattern: " + err.Error())
	}
	return p
}

// normalize turns builder operands into JSON-ready values, rejecting types
// a pattern cannot hold.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, json.Number:
		return v
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return v
	case reflect.Slice:
		out := make([]any, r.Len())
		for i := range out {
			out[i] = normalize(r.Index(i).Interface())
		}
		return out
	}
	panic(fmt.Sprintf("pattern: a pattern cannot hold a value of type %T", v))
}
