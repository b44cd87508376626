// Package eventcodec is the compact binary encoding of events that the
// stores keep, so that replay decodes without parsing JSON:
//
//	event: flags | id | source | type | [time varint] | [subject]
//	       | [datacontenttype] | [dataschema] | [extensions] | data...
//
// Strings are uvarint length + bytes; optional parts are present when their
// flag bit is set; extensions are a uvarint count of (name, kind, value);
// the data takes the rest of the encoding. It is the event part of
// stores/sqlite's record encoding.
package eventcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"time"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/crossbus/crossbus"
)

// ErrCorrupt is returned for bytes that are not a valid encoding.
var ErrCorrupt = errors.New("eventcodec: corrupt event encoding")

const (
	flagTime = 1 << iota
	flagSubject
	flagContentType
	flagSchema
	flagExtensions
	flagBase64
)

const (
	extString = 's'
	extInt    = 'i'
	extBool   = 'b'
	extBytes  = 'y'
	extURI    = 'u'
	extURIRef = 'r'
	extTime   = 't'
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Append appends e's encoding to b.
func Append(b []byte, e *crossbus.Event) ([]byte, error) {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok || ec == nil {
		return nil, fmt.Errorf("eventcodec: event %q is not a CloudEvents 1.0 event: %w", e.ID(), crossbus.ErrInvalidEvent)
	}
	var flags byte
	if ec.Time != nil && !ec.Time.IsZero() {
		flags |= flagTime
	}
	if ec.Subject != nil {
		flags |= flagSubject
	}
	if ec.DataContentType != nil {
		flags |= flagContentType
	}
	if ec.DataSchema != nil {
		flags |= flagSchema
	}
	if len(ec.Extensions) > 0 {
		flags |= flagExtensions
	}
	if e.DataBase64 {
		flags |= flagBase64
	}
	b = append(b, flags)
	b = appendString(b, ec.ID)
	b = appendString(b, ec.Source.String())
	b = appendString(b, ec.Type)
	if flags&flagTime != 0 {
		b = binary.AppendVarint(b, ec.Time.UnixNano())
	}
	if flags&flagSubject != 0 {
		b = appendString(b, *ec.Subject)
	}
	if flags&flagContentType != 0 {
		b = appendString(b, *ec.DataContentType)
	}
	if flags&flagSchema != 0 {
		b = appendString(b, ec.DataSchema.String())
	}
	if flags&flagExtensions != 0 {
		b = binary.AppendUvarint(b, uint64(len(ec.Extensions)))
		for name, v := range ec.Extensions {
			b = appendString(b, name)
			switch x := v.(type) {
			case string:
				b = append(b, extString)
				b = appendString(b, x)
			case int32:
				b = append(b, extInt)
				b = binary.AppendVarint(b, int64(x))
			case bool:
				b = append(b, extBool)
				if x {
					b = append(b, 1)
				} else {
					b = append(b, 0)
				}
			case []byte:
				b = append(b, extBytes)
				b = appendString(b, string(x))
			case types.URI:
				b = append(b, extURI)
				b = appendString(b, x.String())
			case types.URIRef:
				b = append(b, extURIRef)
				b = appendString(b, x.String())
			case types.Timestamp:
				b = append(b, extTime)
				b = binary.AppendVarint(b, x.UnixNano())
			default:
				s, err := types.Format(v)
				if err != nil {
					return nil, fmt.Errorf("eventcodec: event %q extension %q: %w", ec.ID, name, err)
				}
				b = append(b, extString)
				b = appendString(b, s)
			}
		}
	}
	return append(b, e.DataEncoded...), nil
}

// Decoder turns encodings back into events. The zero value is ready. It remembers the last stream,
// source, type and content type it saw, so runs of events that share them
// share one string (and one parsed source URL).
type Decoder struct {
	source      string
	sourceURL   url.URL
	typ         string
	contentType *string
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed bytes, aliasing the body.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (d *Decoder) intern(last *string, b []byte) string {
	if string(b) != *last { // no allocation for the comparison
		*last = string(b)
	}
	return *last
}

// Block holds what one decoded event needs, so that decoding a page of
// events allocates them in one block.
type Block struct {
	E  crossbus.Event
	EC event.EventContextV1
	TS types.Timestamp
}

// Decode decodes b into a new event, which aliases b: b must not be
// modified afterwards.
func (d *Decoder) Decode(b []byte) (*crossbus.Event, error) {
	blk := new(Block)
	if err := d.DecodeInto(b, blk); err != nil {
		return nil, err
	}
	return &blk.E, nil
}

// aliasString returns b as a string without copying. The caller guarantees
// that b is never modified.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// DecodeInto decodes b into blk; the event (&blk.E) aliases b, which must
// not be modified afterwards.
func (d *Decoder) DecodeInto(b []byte, blk *Block) error {
	r := reader{b: b}
	flags := r.byte()
	ec := &blk.EC
	ec.ID = aliasString(r.bytes())
	src := r.bytes()
	if r.err {
		return fmt.Errorf("%w: id or source", ErrCorrupt)
	}
	if string(src) != d.source || d.source == "" {
		u, err := url.Parse(string(src))
		if err != nil {
			return fmt.Errorf("%w: source %q: %v", ErrCorrupt, src, err)
		}
		d.source, d.sourceURL = string(src), *u
	}
	ec.Source = types.URIRef{URL: d.sourceURL}
	ec.Type = d.intern(&d.typ, r.bytes())
	if flags&flagTime != 0 {
		blk.TS = types.Timestamp{Time: time.Unix(0, r.varint()).UTC()}
		ec.Time = &blk.TS
	}
	if flags&flagSubject != 0 {
		s := aliasString(r.bytes())
		ec.Subject = &s
	}
	if flags&flagContentType != 0 {
		ct := r.bytes()
		if d.contentType == nil || *d.contentType != string(ct) {
			s := string(ct)
			d.contentType = &s
		}
		ec.DataContentType = d.contentType
	}
	if flags&flagSchema != 0 {
		s := r.bytes()
		u, err := url.Parse(string(s))
		if err != nil {
			return fmt.Errorf("%w: dataschema %q: %v", ErrCorrupt, s, err)
		}
		ec.DataSchema = &types.URI{URL: *u}
	}
	if flags&flagExtensions != 0 {
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return fmt.Errorf("%w: extension count", ErrCorrupt)
		}
		ec.Extensions = make(map[string]any, n)
		for i := uint64(0); i < n && !r.err; i++ {
			name := string(r.bytes())
			v, err := decodeExtension(&r)
			if err != nil {
				return fmt.Errorf("%w: extension %q: %v", ErrCorrupt, name, err)
			}
			ec.Extensions[name] = v
		}
	}
	if r.err {
		return ErrCorrupt
	}
	blk.E = crossbus.Event{Context: ec, DataBase64: flags&flagBase64 != 0}
	if len(r.b) > 0 {
		blk.E.DataEncoded = r.b
	}
	return nil
}

func decodeExtension(r *reader) (any, error) {
	switch r.byte() {
	case extString:
		return string(r.bytes()), nil
	case extInt:
		return int32(r.varint()), nil
	case extBool:
		return r.byte() == 1, nil
	case extBytes:
		return append([]byte(nil), r.bytes()...), nil
	case extURI:
		u, err := url.Parse(string(r.bytes()))
		if err != nil {
			return nil, err
		}
		return types.URI{URL: *u}, nil
	case extURIRef:
		u, err := url.Parse(string(r.bytes()))
		if err != nil {
			return nil, err
		}
		return types.URIRef{URL: *u}, nil
	case extTime:
		return types.Timestamp{Time: time.Unix(0, r.varint()).UTC()}, nil
	}
	return nil, errors.New("unknown value kind")
}
