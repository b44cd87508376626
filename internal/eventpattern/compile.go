package eventpattern

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Pattern is a compiled EventBridge event pattern. It is immutable and safe
// for concurrent use.
type Pattern struct {
	root *objNode
	src  string // canonical JSON
	// fast is set for the commonest pattern, exact strings on one string
	// context attribute ({"type": ["a", "b"]}): Match reads the attribute
	// directly instead of presenting the event as a document.
	fast *fieldNode
}

// objNode is an object in a pattern: every field must match (AND), and
// when or is set, at least one of its alternatives must match too.
type objNode struct {
	fields []*fieldNode // leaf fields first, then nested objects; each group by name
	or     []*objNode   // nil, or the two or more alternatives of "$or"
}

// fieldNode is one named member of a pattern object: either a value list
// (leaf) or a nested object.
type fieldNode struct {
	name string
	attr attrID // meaning of name as a top-level event field
	leaf *leafNode
	obj  *objNode
}

// leafNode is a value list: it matches when any cond matches.
type leafNode struct {
	conds []cond // as written, for printing and translation

	// evaluation form
	strs       []string            // exact strings, when few
	strSet     map[string]struct{} // exact strings, when many
	others     []cond              // every cond that is not an exact string
	ifMissing  bool                // an {"exists": false} makes absence match
	onlyExists bool                // all conds are exists conditions
}

// CompileError reports an invalid pattern: Path is the JSON path of the
// offending member (like "data.amount" or "$or[1].type"; empty for the
// pattern as a whole) and Rule the rule it breaks. It matches ErrInvalidPattern
// with errors.Is.
type CompileError struct {
	Path string // JSON path of the offending member, "" for the whole pattern
	Rule string // the rule broken, e.g. "numeric expects operator/value pairs"
}

// ErrInvalidPattern is matched by every *CompileError.
var ErrInvalidPattern = errors.New("invalid event pattern")

// Error returns "path: rule", or just the rule when the path is empty.
func (e *CompileError) Error() string {
	if e.Path == "" {
		return e.Rule
	}
	return e.Path + ": " + e.Rule
}

// Is reports whether target is ErrInvalidPattern.
func (e *CompileError) Is(target error) bool { return target == ErrInvalidPattern }

// opNames are the operator keys; they may not be used as field names inside
// "$or" alternatives, as in EventBridge.
var opNames = map[string]bool{
	"prefix": true, "suffix": true, "equals-ignore-case": true, "wildcard": true,
	"anything-but": true, "numeric": true, "exists": true, "cidr": true,
}

// Compile parses and validates an EventBridge event pattern. Errors are of
// type *CompileError.
func Compile(pattern []byte) (*Pattern, error) {
	var t tape
	root, err := t.decode(pattern)
	if err != nil {
		return nil, &CompileError{Rule: err.Error()}
	}
	c := compiler{t: &t}
	if t.nodes[root].kind != kObject {
		return nil, &CompileError{Rule: "pattern must be a JSON object"}
	}
	obj, err := c.object(root, "", true, false)
	if err != nil {
		return nil, err
	}
	p := &Pattern{root: obj, fast: fastField(obj)}
	p.src = string(appendObj(nil, obj))
	return p, nil
}

// MustCompile is like Compile but panics if the pattern is invalid. It
// simplifies initializing patterns held in global variables.
func MustCompile(pattern string) *Pattern {
	p, err := Compile([]byte(pattern))
	if err != nil {
		panic("pattern: MustCompile(" + strconv.Quote(pattern) + "): " + err.Error())
	}
	return p
}

// String returns the pattern in canonical JSON form (members sorted by name).
// Compiling it gives an equivalent pattern.
func (p *Pattern) String() string { return p.src }

// MarshalJSON returns the canonical JSON form of the pattern.
func (p *Pattern) MarshalJSON() ([]byte, error) { return []byte(p.src), nil }

type compiler struct{ t *tape }

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func errAt(path, format string, args ...any) error {
	return &CompileError{Path: path, Rule: fmt.Sprintf(format, args...)}
}

// object compiles a pattern object. path is the JSON path shown in errors;
// top says whether the object's members are top-level event fields.
func (c *compiler) object(idx int32, path string, top, inOr bool) (*objNode, error) {
	nodes := c.t.nodes
	end := nodes[idx].end
	if end == idx+1 {
		return nil, errAt(path, "empty objects are not allowed")
	}
	// Later members replace earlier ones with the same name, as in EventBridge.
	last := map[string]int32{}
	for i := idx + 1; i < end; i = nodes[i+1].end {
		last[nodes[i].s] = i + 1
	}
	names := make([]string, 0, len(last))
	for name := range last {
		names = append(names, name)
	}
	slices.Sort(names)
	o := &objNode{}
	var objs []*fieldNode
	for _, name := range names {
		v := last[name]
		fpath := joinPath(path, name)
		if name == "$or" {
			alts, err := c.or(v, path, top)
			if err != nil {
				return nil, err
			}
			o.or = alts
			continue
		}
		if inOr && opNames[name] {
			return nil, errAt(fpath, "%q is an operator name and cannot be a field name inside $or", name)
		}
		f := &fieldNode{name: strings.Clone(name)}
		if top {
			f.attr = attrOf(name)
		}
		switch nodes[v].kind {
		case kObject:
			obj, err := c.object(v, fpath, false, inOr)
			if err != nil {
				return nil, err
			}
			f.obj = obj
			objs = append(objs, f)
		case kArray:
			leaf, err := c.leaf(v, fpath)
			if err != nil {
				return nil, err
			}
			f.leaf = leaf
			o.fields = append(o.fields, f)
		default:
			return nil, errAt(fpath, "value must be an object or an array")
		}
	}
	o.fields = append(o.fields, objs...)
	return o, nil
}

func (c *compiler) or(v int32, path string, top bool) ([]*objNode, error) {
	nodes := c.t.nodes
	opath := joinPath(path, "$or")
	if nodes[v].kind != kArray {
		return nil, errAt(opath, "$or expects an array of at least two objects")
	}
	var alts []*objNode
	for i, j := v+1, 0; i < nodes[v].end; i, j = nodes[i].end, j+1 {
		apath := fmt.Sprintf("%s[%d]", opath, j)
		if nodes[i].kind != kObject {
			return nil, errAt(apath, "$or alternatives must be objects")
		}
		// Alternatives are relative to the object holding "$or".
		alt, err := c.object(i, apath, top, true)
		if err != nil {
			return nil, err
		}
		alts = append(alts, alt)
	}
	if len(alts) < 2 {
		return nil, errAt(opath, "$or expects an array of at least two objects")
	}
	return alts, nil
}

func (c *compiler) leaf(v int32, path string) (*leafNode, error) {
	nodes := c.t.nodes
	if nodes[v].end == v+1 {
		return nil, errAt(path, "empty arrays are not allowed")
	}
	l := &leafNode{}
	for i := v + 1; i < nodes[v].end; i = nodes[i].end {
		n := &nodes[i]
		var cd cond
		switch n.kind {
		case kString:
			cd = cond{kind: cString, str: strings.Clone(n.s)}
		case kNumber:
			if !isFinite(n.num) {
				return nil, errAt(path, "number %s is out of range", n.s)
			}
			cd = cond{kind: cNumber, num: newNumber(n.num)}
		case kTrue:
			cd = cond{kind: cTrue}
		case kFalse:
			cd = cond{kind: cFalse}
		case kNull:
			cd = cond{kind: cNull}
		case kObject:
			var err error
			if cd, err = c.operator(i, path); err != nil {
				return nil, err
			}
		default:
			return nil, errAt(path, "values must be strings, numbers, booleans, null or operator objects")
		}
		l.conds = append(l.conds, cd)
	}
	l.prepare()
	return l, nil
}

// prepare builds the evaluation form of a value list.
func (l *leafNode) prepare() {
	l.onlyExists = true
	for _, cd := range l.conds {
		if cd.kind != cExists {
			l.onlyExists = false
		}
		switch {
		case cd.kind == cString:
			l.strs = append(l.strs, cd.str)
		case cd.kind == cExists && !cd.exists:
			l.ifMissing = true
		default:
			l.others = append(l.others, cd)
		}
	}
	if len(l.strs) > 8 {
		l.strSet = make(map[string]struct{}, len(l.strs))
		for _, s := range l.strs {
			l.strSet[s] = struct{}{}
		}
		l.strs = nil
	}
}

// fastField returns the field of a pattern that is exact strings on one
// plain string attribute (id, type, subject, datacontenttype), or nil.
func fastField(obj *objNode) *fieldNode {
	if len(obj.or) > 0 || len(obj.fields) != 1 {
		return nil
	}
	f := obj.fields[0]
	switch f.attr {
	case attrEventID, attrType, attrSubject, attrDataContentType:
	default:
		return nil
	}
	if l := f.leaf; l == nil || len(l.others) > 0 || l.ifMissing || l.onlyExists {
		return nil
	}
	return f
}
