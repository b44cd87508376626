package sqlite

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

// The store encodes events in a compact binary form so that replay decodes
// without parsing JSON:
//
//	record body: 0x01 | stream | uvarint version | uvarint position
//	             | varint recorded | event
//	event:       flags | id | source | type | [time varint] | [subject]
//	             | [datacontenttype] | [dataschema] | [extensions] | data...
//
// Strings are uvarint length + bytes; optional parts are present when their
// flag bit is set; extensions are a uvarint count of (name, kind, value);
// the data takes the rest of the body.
const recordFormat = 1

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

var errCorrupt = errors.New("sqlite: corrupt event encoding")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeEvent appends the event part of the encoding to b.
func encodeEvent(b []byte, e *crossbus.Event) ([]byte, error) {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok || ec == nil {
		return nil, fmt.Errorf("sqlite: event %q is not a CloudEvents 1.0 event: %w", e.ID(), crossbus.ErrInvalidEvent)
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
					return nil, fmt.Errorf("sqlite: event %q extension %q: %w", ec.ID, name, err)
				}
				b = append(b, extString)
				b = appendString(b, s)
			}
		}
	}
	return append(b, e.DataEncoded...), nil
}

// encodeRecord returns the body of an events row. The header repeats the
// row's stream, version and position, so that reads select the body alone.
func encodeRecord(stream string, version, position uint64, recorded int64, eventPart []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*4+len(stream)+len(eventPart))
	b = append(b, recordFormat)
	b = appendString(b, stream)
	b = binary.AppendUvarint(b, version)
	b = binary.AppendUvarint(b, position)
	b = binary.AppendVarint(b, recorded)
	return append(b, eventPart...)
}

// decoder turns bodies back into events. It remembers the last stream,
// source, type and content type it saw, so runs of events that share them
// share one string (and one parsed source URL).
type decoder struct {
	stream      string
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

func (d *decoder) intern(last *string, b []byte) string {
	if string(b) != *last { // no allocation for the comparison
		*last = string(b)
	}
	return *last
}

// eventBlock holds what one decoded event needs, so that decoding a page of
// events allocates them in one block.
type eventBlock struct {
	e  crossbus.Event
	ec event.EventContextV1
	ts types.Timestamp
}

// decodeRecord decodes an events row body into blk. The event's id,
// subject and data alias body, which must not be modified afterwards (the
// driver hands out a fresh copy of every blob).
func (d *decoder) decodeRecord(body []byte, blk *eventBlock) (rec Record, err error) {
	r := reader{b: body}
	if r.byte() != recordFormat {
		return rec, fmt.Errorf("%w: unknown record format", errCorrupt)
	}
	rec.Stream = d.intern(&d.stream, r.bytes())
	rec.Version = r.uvarint()
	rec.Position = r.uvarint()
	recorded := r.varint()
	if r.err {
		return rec, fmt.Errorf("%w: record header", errCorrupt)
	}
	rec.Recorded = time.Unix(0, recorded).UTC()
	if err := d.decodeEventInto(r.b, blk); err != nil {
		return rec, err
	}
	rec.Event = &blk.e
	return rec, nil
}

// recordHeader reads the stream version and position from a record body's
// header (zeros if the body is corrupt; decodeRecord reports that).
func recordHeader(body []byte) (version, position uint64) {
	r := reader{b: body}
	r.byte()
	r.bytes()
	version = r.uvarint()
	return version, r.uvarint()
}

// decodeEvent decodes the event part into a new event, which aliases b.
func (d *decoder) decodeEvent(b []byte) (*crossbus.Event, error) {
	blk := new(eventBlock)
	if err := d.decodeEventInto(b, blk); err != nil {
		return nil, err
	}
	return &blk.e, nil
}

// aliasString returns b as a string without copying. The caller guarantees
// that b is never modified.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (d *decoder) decodeEventInto(b []byte, blk *eventBlock) error {
	r := reader{b: b}
	flags := r.byte()
	ec := &blk.ec
	ec.ID = aliasString(r.bytes())
	src := r.bytes()
	if r.err {
		return fmt.Errorf("%w: id or source", errCorrupt)
	}
	if string(src) != d.source || d.source == "" {
		u, err := url.Parse(string(src))
		if err != nil {
			return fmt.Errorf("%w: source %q: %v", errCorrupt, src, err)
		}
		d.source, d.sourceURL = string(src), *u
	}
	ec.Source = types.URIRef{URL: d.sourceURL}
	ec.Type = d.intern(&d.typ, r.bytes())
	if flags&flagTime != 0 {
		blk.ts = types.Timestamp{Time: time.Unix(0, r.varint()).UTC()}
		ec.Time = &blk.ts
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
			return fmt.Errorf("%w: dataschema %q: %v", errCorrupt, s, err)
		}
		ec.DataSchema = &types.URI{URL: *u}
	}
	if flags&flagExtensions != 0 {
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return fmt.Errorf("%w: extension count", errCorrupt)
		}
		ec.Extensions = make(map[string]any, n)
		for i := uint64(0); i < n && !r.err; i++ {
			name := string(r.bytes())
			v, err := decodeExtension(&r)
			if err != nil {
				return fmt.Errorf("%w: extension %q: %v", errCorrupt, name, err)
			}
			ec.Extensions[name] = v
		}
	}
	if r.err {
		return errCorrupt
	}
	blk.e = crossbus.Event{Context: ec, DataBase64: flags&flagBase64 != 0}
	if len(r.b) > 0 {
		blk.e.DataEncoded = r.b
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
