// Package eventcodec is the compact binary encoding of events that the
// stores keep, so that replay decodes without parsing JSON:
//
//	event: flags | id | source | type | [time varint] | [subject]
//	       | [datacontenttype] | [dataschema] | [extensions] | data...
//
// Strings are uvarint length + bytes; optional parts are present when their
// flag bit is set; extensions are a uvarint count of (name, kind, value);
// the data takes the rest of the encoding. It is the event part of
// stores/sqlite's records, which frame it with AppendString and Reader, and
// the whole of stores/postgres's.
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

// AppendString appends s as the encoding writes strings: its length as a
// uvarint, then its bytes.
func AppendString(b []byte, s string) []byte {
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
	b = AppendString(b, ec.ID)
	b = AppendString(b, ec.Source.String())
	b = AppendString(b, ec.Type)
	if flags&flagTime != 0 {
		b = binary.AppendVarint(b, ec.Time.UnixNano())
	}
	if flags&flagSubject != 0 {
		b = AppendString(b, *ec.Subject)
	}
	if flags&flagContentType != 0 {
		b = AppendString(b, *ec.DataContentType)
	}
	if flags&flagSchema != 0 {
		b = AppendString(b, ec.DataSchema.String())
	}
	if flags&flagExtensions != 0 {
		b = binary.AppendUvarint(b, uint64(len(ec.Extensions)))
		for name, v := range ec.Extensions {
			b = AppendString(b, name)
			switch x := v.(type) {
			case string:
				b = append(b, extString)
				b = AppendString(b, x)
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
				b = AppendString(b, string(x))
			case types.URI:
				b = append(b, extURI)
				b = AppendString(b, x.String())
			case types.URIRef:
				b = append(b, extURIRef)
				b = AppendString(b, x.String())
			case types.Timestamp:
				b = append(b, extTime)
				b = binary.AppendVarint(b, x.UnixNano())
			default:
				s, err := types.Format(v)
				if err != nil {
					return nil, fmt.Errorf("eventcodec: event %q extension %q: %w", ec.ID, name, err)
				}
				b = append(b, extString)
				b = AppendString(b, s)
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

// Reader reads an encoding's parts in turn, for formats that frame events
// (stores/sqlite's records). A read past the end or of a malformed number
// sets Failed and returns zero values.
type Reader struct {
	b   []byte
	err bool
}

// NewReader reads b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Failed reports whether a read failed.
func (r *Reader) Failed() bool { return r.err }

// Rest returns what is left to read.
func (r *Reader) Rest() []byte { return r.b }

// Uvarint reads a uvarint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Bytes returns the next length-prefixed bytes, aliasing the body.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
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
	r := Reader{b: b}
	flags := r.Byte()
	ec := &blk.EC
	ec.ID = aliasString(r.Bytes())
	src := r.Bytes()
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
	ec.Type = d.intern(&d.typ, r.Bytes())
	if flags&flagTime != 0 {
		blk.TS = types.Timestamp{Time: time.Unix(0, r.Varint()).UTC()}
		ec.Time = &blk.TS
	}
	if flags&flagSubject != 0 {
		s := aliasString(r.Bytes())
		ec.Subject = &s
	}
	if flags&flagContentType != 0 {
		ct := r.Bytes()
		if d.contentType == nil || *d.contentType != string(ct) {
			s := string(ct)
			d.contentType = &s
		}
		ec.DataContentType = d.contentType
	}
	if flags&flagSchema != 0 {
		s := r.Bytes()
		u, err := url.Parse(string(s))
		if err != nil {
			return fmt.Errorf("%w: dataschema %q: %v", ErrCorrupt, s, err)
		}
		ec.DataSchema = &types.URI{URL: *u}
	}
	if flags&flagExtensions != 0 {
		n := r.Uvarint()
		if n > uint64(len(r.b)) {
			return fmt.Errorf("%w: extension count", ErrCorrupt)
		}
		ec.Extensions = make(map[string]any, n)
		for i := uint64(0); i < n && !r.err; i++ {
			name := string(r.Bytes())
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

func decodeExtension(r *Reader) (any, error) {
	switch r.Byte() {
	case extString:
		return string(r.Bytes()), nil
	case extInt:
		return int32(r.Varint()), nil
	case extBool:
		return r.Byte() == 1, nil
	case extBytes:
		return append([]byte(nil), r.Bytes()...), nil
	case extURI:
		u, err := url.Parse(string(r.Bytes()))
		if err != nil {
			return nil, err
		}
		return types.URI{URL: *u}, nil
	case extURIRef:
		u, err := url.Parse(string(r.Bytes()))
		if err != nil {
			return nil, err
		}
		return types.URIRef{URL: *u}, nil
	case extTime:
		return types.Timestamp{Time: time.Unix(0, r.Varint()).UTC()}, nil
	}
	return nil, errors.New("unknown value kind")
}
