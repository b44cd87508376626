package eventpattern

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds a small JSON decoder built for matching. It turns a JSON
// text into a flat "tape" of nodes, one per value (and one per object key),
// in document order. Every container node records where its subtree ends, so
// walking an object or array is a loop over indices with no pointers and no
// allocation once the tape's slice has grown to size.
//
// Strings are not copied: a string without escapes is a view of the input
// bytes, and an escaped string is unescaped into a scratch buffer that the
// tape owns. Such views are valid only until the tape is reset, which is why
// nothing outside this package ever sees them and why Compile clones every
// string it keeps.

// kind is the JSON type of a tape node.
type kind uint8

const (
	kNull kind = iota + 1
	kFalse
	kTrue
	kNumber
	kString
	kObject
	kArray
	kKey // an object member's name; the member's value is the next node
)

// node is one entry of the tape.
type node struct {
	s    string  // string value, key name, or a number's literal text
	num  float64 // numeric value of a kNumber
	end  int32   // index just past this node's subtree
	kind kind
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// errSyntax is wrapped by every decoding error.
var errSyntax = errors.New("invalid JSON")

// tape is a decoded JSON document.
type tape struct {
	nodes []node
	buf   []byte // unescaped string bytes
}

func (t *tape) reset() {
	t.nodes = t.nodes[:0]
	t.buf = t.buf[:0]
}

// decode appends the nodes of src, which must hold exactly one JSON value,
// and returns the index of its root node.
func (t *tape) decode(src []byte) (int32, error) {
	d := decoder{src: src, nodes: t.nodes, buf: t.buf}
	root := int32(len(t.nodes))
	d.skipSpace()
	err := d.value(0)
	if err == nil {
		d.skipSpace()
		if d.pos != len(d.src) {
			err = d.errorf("unexpected %q after top-level value", d.src[d.pos])
		}
	}
	t.nodes, t.buf = d.nodes, d.buf
	return root, err
}

// decoder works on its own copies of the tape's slices (kept on the stack
// rather than behind a pointer) and hands them back when done.
type decoder struct {
	src   []byte
	pos   int
	nodes []node
	buf   []byte
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.src) {
		switch d.src[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) push(k kind) int32 {
	i := int32(len(d.nodes))
	d.nodes = append(d.nodes, node{kind: k, end: i + 1})
	return i
}

func (d *decoder) value(depth int) error {
	if d.pos >= len(d.src) {
		return d.errorf("unexpected end of input")
	}
	switch c := d.src[d.pos]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return err
		}
		d.nodes[d.push(kString)].s = s
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true", kTrue)
	case c == 'f':
		return d.literal("false", kFalse)
	case c == 'n':
		return d.literal("null", kNull)
	default:
		return d.errorf("unexpected %q", c)
	}
}

func (d *decoder) literal(lit string, k kind) error {
	if len(d.src)-d.pos < len(lit) || string(d.src[d.pos:d.pos+len(lit)]) != lit {
		return d.errorf("invalid literal")
	}
	d.pos += len(lit)
	d.push(k)
	return nil
}

func (d *decoder) object(depth int) error {
	if depth > maxDepth {
		return d.errorf("exceeded max depth %d", maxDepth)
	}
	obj := d.push(kObject)
	d.pos++ // '{'
	d.skipSpace()
	if d.pos < len(d.src) && d.src[d.pos] == '}' {
		d.pos++
		return nil
	}
	for {
		if d.pos >= len(d.src) || d.src[d.pos] != '"' {
			return d.errorf("expected string for object key")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.nodes[d.push(kKey)].s = key
		d.skipSpace()
		if d.pos >= len(d.src) || d.src[d.pos] != ':' {
			return d.errorf("expected ':' after object key")
		}
		d.pos++
		d.skipSpace()
		if err := d.value(depth); err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.src) {
			return d.errorf("unexpected end of input in object")
		}
		switch d.src[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			d.pos++
			d.nodes[obj].end = int32(len(d.nodes))
			return nil
		default:
			return d.errorf("expected ',' or '}' in object")
		}
	}
}

func (d *decoder) array(depth int) error {
	if depth > maxDepth {
		return d.errorf("exceeded max depth %d", maxDepth)
	}
	arr := d.push(kArray)
	d.pos++ // '['
	d.skipSpace()
	if d.pos < len(d.src) && d.src[d.pos] == ']' {
		d.pos++
		return nil
	}
	for {
		if err := d.value(depth); err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.src) {
			return d.errorf("unexpected end of input in array")
		}
		switch d.src[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case ']':
			d.pos++
			d.nodes[arr].end = int32(len(d.nodes))
			return nil
		default:
			return d.errorf("expected ',' or ']' in array")
		}
	}
}

// number scans a number following the JSON grammar and parses its value.
func (d *decoder) number() error {
	start := d.pos
	src := d.src
	i := d.pos
	if src[i] == '-' {
		i++
	}
	intStart := i
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && src[i] >= '1' && src[i] <= '9':
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return d.errorf("invalid number")
	}
	simple := i-intStart <= 15 // few enough digits to be exact in a float64
	if i < len(src) && src[i] == '.' {
		simple = false
		i++
		if i >= len(src) || src[i] < '0' || src[i] > '9' {
			d.pos = i
			return d.errorf("invalid number: digit expected after '.'")
		}
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		simple = false
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || src[i] < '0' || src[i] > '9' {
			d.pos = i
			return d.errorf("invalid number: digit expected in exponent")
		}
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	}
	d.pos = i
	text := unsafe.String(&src[start], i-start)
	var f float64
	if simple {
		var n int64
		for _, c := range src[intStart:i] {
			n = n*10 + int64(c-'0')
		}
		f = float64(n)
		if src[start] == '-' {
			f = -f
		}
	} else {
		// A syntactically valid number only fails with ErrRange; the
		// returned ±Inf or 0 is what we keep, as no pattern can equal it.
		f, _ = strconv.ParseFloat(text, 64)
	}
	n := &d.nodes[d.push(kNumber)]
	n.num = f
	n.s = text
	return nil
}

// special marks the bytes that end the fast scan of a string: the closing
// quote, a backslash, and control characters (an error).
var special = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str scans a string starting at the opening quote and returns its value.
func (d *decoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	src := d.src
	i := start
	for i < len(src) && !special[src[i]] {
		i++
	}
	if i >= len(src) {
		d.pos = len(src)
		return "", d.errorf("unterminated string")
	}
	switch src[i] {
	case '"':
		d.pos = i + 1
		if i == start {
			return "", nil
		}
		return unsafe.String(&src[start], i-start), nil
	case '\\':
		return d.strSlow(start, i)
	}
	d.pos = i
	return "", d.errorf("control character in string")
}

// strSlow unescapes a string into the tape's buffer. i is the first '\'.
func (d *decoder) strSlow(start, i int) (string, error) {
	src := d.src
	buf := d.buf
	bstart := len(buf)
	buf = append(buf, src[start:i]...)
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.buf = buf
			if len(buf) == bstart {
				return "", nil
			}
			return unsafe.String(&buf[bstart], len(buf)-bstart), nil
		case c < 0x20:
			d.pos = i
			return "", d.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		// escape
		if i+1 >= len(src) {
			break
		}
		e := src[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(src, i)
			if !ok {
				d.pos = i
				return "", d.errorf("invalid \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
					r2, ok2 = hex4(src, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			d.pos = i - 1
			return "", d.errorf("invalid escape character %q", e)
		}
	}
	d.pos = len(src)
	d.buf = buf
	return "", d.errorf("unterminated string")
}

func hex4(src []byte, i int) (rune, bool) {
	if i+4 > len(src) {
		return 0, false
	}
	var r rune
	for _, c := range src[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// member returns the value node of the last member of object obj named
// name (JSON objects with repeated names keep the last, as encoding/json
// does), or -1.
func (t *tape) member(obj int32, name string) int32 {
	nodes := t.nodes
	found := int32(-1)
	end := nodes[obj].end
	for i := obj + 1; i < end; i = nodes[i+1].end {
		if nodes[i].s == name {
			found = i + 1
		}
	}
	return found
}
