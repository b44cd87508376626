package eventpattern

import (
	"fmt"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Doc is an event decoded once for matching, so that any number of patterns
// and matchers can share one decode. It presents the event's CloudEvents
// JSON form: the context attributes and extensions as top-level fields and
// "data" as the decoded JSON data when the data content type is JSON or
// absent, as a string when it is textual (text/*, *xml*), and absent for
// binary data or data that is not valid JSON under a JSON content type.
//
// Resetting a Doc reuses its memory, so matching through a Doc that is
// reset for each event allocates nothing in the steady state. Work is lazy:
// data is parsed, and time or non-string extensions are formatted, only when
// a pattern first asks for them.
//
// The zero Doc is ready to use. A Doc must not be used by more than one
// goroutine at a time, and it must not outlive the event or bytes it was
// reset with: it refers to them without copying.
type Doc struct {
	t    tape
	root int32 // refRoot for an event, else the top object's node
	ev   *event.Event

	attrs [numAttrs]int32 // resolved attribute nodes; refUnresolved until asked
	exts  []extRef        // resolved extensions

	// matcher scratch
	gen     uint32
	marks   []uint32
	cands   []int32
	matched []int32
	vals    []int32
}

type extRef struct {
	name string
	ref  int32
}

const (
	refMissing    int32 = -1
	refRoot       int32 = -2
	refUnresolved int32 = -3
)

// attrID names the top-level fields of an event that are not extensions.
type attrID uint8

const (
	attrExt attrID = iota // an extension (or any other name)
	attrSpecVersion
	attrEventID
	attrSource
	attrType
	attrSubject
	attrTime
	attrDataContentType
	attrDataSchema
	attrData
	numAttrs
)

func attrOf(name string) attrID {
	switch name {
	case "specversion":
		return attrSpecVersion
	case "id":
		return attrEventID
	case "source":
		return attrSource
	case "type":
		return attrType
	case "subject":
		return attrSubject
	case "time":
		return attrTime
	case "datacontenttype":
		return attrDataContentType
	case "dataschema":
		return attrDataSchema
	case "data":
		return attrData
	}
	return attrExt
}

// Reset makes d present ev. It does no decoding work up front.
func (d *Doc) Reset(ev *event.Event) {
	d.t.reset()
	d.ev = ev
	d.root = refRoot
	for i := range d.attrs {
		d.attrs[i] = refUnresolved
	}
	d.exts = d.exts[:0]
}

// ResetJSON makes d present the JSON object doc, typically a CloudEvent in
// its structured JSON form (but any JSON object can be matched). It returns
// an error if doc is not a valid JSON object.
func (d *Doc) ResetJSON(doc []byte) error {
	d.t.reset()
	d.ev = nil
	d.exts = d.exts[:0]
	root, err := d.t.decode(doc)
	if err != nil {
		d.root = refMissing
		return err
	}
	if d.t.nodes[root].kind != kObject {
		d.root = refMissing
		return fmt.Errorf("%w: event must be a JSON object", errSyntax)
	}
	d.root = root
	return nil
}

// holdsEvent reports whether d was reset with an event or a JSON object.
func (d *Doc) holdsEvent() bool {
	if d.root == refRoot {
		return d.ev != nil
	}
	return d.root >= 0 && int(d.root) < len(d.t.nodes)
}

// release drops references to the event so a pooled Doc does not keep it alive.
func (d *Doc) release() {
	d.ev = nil
	d.t.reset()
	d.exts = d.exts[:0]
}

var docPool = sync.Pool{New: func() any { return new(Doc) }}

func getDoc() *Doc { return docPool.Get().(*Doc) }

func putDoc(d *Doc) {
	d.release()
	docPool.Put(d)
}

// field returns the node of member name of v (refRoot, refMissing or a node).
func (d *Doc) field(v int32, name string, attr attrID) int32 {
	switch {
	case v == refRoot:
		return d.rootField(name, attr)
	case v < 0:
		return refMissing
	case d.t.nodes[v].kind != kObject:
		return refMissing
	}
	return d.t.member(v, name)
}

func (d *Doc) rootField(name string, attr attrID) int32 {
	if attr == attrExt {
		for _, e := range d.exts {
			if e.name == name {
				return e.ref
			}
		}
		ref := d.resolveExt(name)
		d.exts = append(d.exts, extRef{name: name, ref: ref})
		return ref
	}
	if r := d.attrs[attr]; r != refUnresolved {
		return r
	}
	r := d.resolveAttr(attr)
	d.attrs[attr] = r
	return r
}

func (d *Doc) str(s string) int32 {
	i := int32(len(d.t.nodes))
	d.t.nodes = append(d.t.nodes, node{kind: kString, s: s, end: i + 1})
	return i
}

func (d *Doc) optStr(s string) int32 {
	if s == "" {
		return refMissing
	}
	return d.str(s)
}

func (d *Doc) scalar(k kind) int32 {
	i := int32(len(d.t.nodes))
	d.t.nodes = append(d.t.nodes, node{kind: k, end: i + 1})
	return i
}

func (d *Doc) number(f float64) int32 {
	i := int32(len(d.t.nodes))
	d.t.nodes = append(d.t.nodes, node{kind: kNumber, num: f, end: i + 1})
	return i
}
