package eventpattern

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// This file turns a CloudEvent's attributes, extensions and data into Doc
// nodes, in the form the CloudEvents SDK writes them in structured JSON.

func (d *Doc) resolveAttr(attr attrID) int32 {
	ev := d.ev
	if ev == nil {
		return refMissing
	}
	if attr == attrData {
		return d.resolveData()
	}
	// Fast path: read a 1.0 context directly. Its accessors copy the whole
	// context on every call and format URIs into new strings.
	if ec, ok := ev.Context.(*event.EventContextV1); ok && ec != nil {
		switch attr {
		case attrSpecVersion:
			return d.str(event.CloudEventsVersionV1)
		case attrEventID:
			return d.optStr(ec.ID)
		case attrSource:
			return d.uri(&ec.Source.URL)
		case attrType:
			return d.optStr(ec.Type)
		case attrSubject:
			if ec.Subject == nil {
				return refMissing
			}
			return d.optStr(*ec.Subject)
		case attrDataContentType:
			if ec.DataContentType == nil {
				return refMissing
			}
			return d.optStr(*ec.DataContentType)
		case attrDataSchema:
			if ec.DataSchema == nil {
				return refMissing
			}
			return d.uri(&ec.DataSchema.URL)
		case attrTime:
			if ec.Time == nil || ec.Time.IsZero() {
				return refMissing
			}
			return d.timeStr(ec.Time.Time)
		}
		return refMissing
	}
	switch attr {
	case attrSpecVersion:
		return d.optStr(ev.SpecVersion())
	case attrEventID:
		return d.optStr(ev.ID())
	case attrSource:
		return d.optStr(ev.Source())
	case attrType:
		return d.optStr(ev.Type())
	case attrSubject:
		return d.optStr(ev.Subject())
	case attrDataContentType:
		return d.optStr(ev.DataContentType())
	case attrDataSchema:
		return d.optStr(ev.DataSchema())
	case attrTime:
		t := ev.Time()
		if t.IsZero() {
			return refMissing
		}
		return d.timeStr(t)
	}
	return refMissing
}

// uri returns a string node of u as u.String() formats it, without
// allocating for the common shapes of URI (path-only references such as
// "/orders/eu", scheme://host/path, and opaque URIs such as "urn:x:y").
func (d *Doc) uri(u *url.URL) int32 {
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		u.RawPath != "" || !plainURIPart(u.Host) || !plainURIPart(u.Path) {
		return d.optStr(u.String())
	}
	if u.Opaque != "" {
		if !plainURIPart(u.Opaque) {
			return d.optStr(u.String())
		}
		if u.Scheme == "" {
			return d.str(u.Opaque)
		}
		return d.concat(u.Scheme, ":", u.Opaque)
	}
	if u.Scheme == "" && u.Host == "" {
		// A first segment with a colon is written as "./seg:ment".
		if seg, _, _ := strings.Cut(u.Path, "/"); strings.Contains(seg, ":") {
			return d.optStr(u.String())
		}
		return d.optStr(u.Path)
	}
	if u.OmitHost && u.Host == "" {
		return d.concat(u.Scheme, ":", u.Path)
	}
	slashes, sep := "", ""
	if u.Host != "" || u.Path != "" {
		slashes = "//"
	}
	if u.Path != "" && u.Path[0] != '/' && u.Host != "" {
		sep = "/"
	}
	start := len(d.t.buf)
	if u.Scheme != "" {
		d.t.buf = append(d.t.buf, u.Scheme...)
		d.t.buf = append(d.t.buf, ':')
	}
	d.t.buf = append(d.t.buf, slashes...)
	d.t.buf = append(d.t.buf, u.Host...)
	d.t.buf = append(d.t.buf, sep...)
	d.t.buf = append(d.t.buf, u.Path...)
	return d.bufTail(start)
}

// plainURIPart reports whether s holds only characters that url.URL never
// escapes in a host or path.
func plainURIPart(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':':
		default:
			return false
		}
	}
	return true
}

func (d *Doc) concat(a, b, c string) int32 {
	start := len(d.t.buf)
	d.t.buf = append(d.t.buf, a...)
	d.t.buf = append(d.t.buf, b...)
	d.t.buf = append(d.t.buf, c...)
	return d.bufTail(start)
}

// bufTail returns a string node of the scratch buffer from start to its end.
func (d *Doc) bufTail(start int) int32 {
	if len(d.t.buf) == start {
		return d.str("")
	}
	return d.str(unsafe.String(&d.t.buf[start], len(d.t.buf)-start))
}

// timeStr formats t as the CloudEvents SDK does in JSON (RFC 3339 in UTC,
// with fractional seconds only as needed).
func (d *Doc) timeStr(t time.Time) int32 {
	start := len(d.t.buf)
	d.t.buf = t.UTC().AppendFormat(d.t.buf, time.RFC3339Nano)
	return d.bufTail(start)
}

// resolveData presents the event data: parsed JSON for a JSON (or absent)
// content type, a string for a textual one, and absent otherwise.
func (d *Doc) resolveData() int32 {
	data := d.ev.Data()
	if len(data) == 0 {
		return refMissing
	}
	ct := d.ev.DataContentType()
	if ct == "" || isJSONMediaType(ct) {
		mark := len(d.t.nodes)
		root, err := d.t.decode(data)
		if err == nil {
			return root
		}
		d.t.nodes = d.t.nodes[:mark]
		return refMissing
	}
	if isTextMediaType(ct) && utf8.Valid(data) {
		return d.str(unsafe.String(&data[0], len(data)))
	}
	return refMissing
}

func (d *Doc) resolveExt(name string) int32 {
	if d.ev == nil {
		return refMissing
	}
	var v any
	var ok bool
	if ec, isV1 := d.ev.Context.(*event.EventContextV1); isV1 && ec != nil {
		v, ok = ec.Extensions[name]
	} else {
		v, ok = d.ev.Extensions()[name]
	}
	if !ok {
		return refMissing
	}
	switch v := v.(type) {
	case string:
		return d.str(v)
	case bool:
		if v {
			return d.scalar(kTrue)
		}
		return d.scalar(kFalse)
	case int32:
		return d.number(float64(v))
	case int:
		return d.number(float64(v))
	case int64:
		return d.number(float64(v))
	case float64:
		return d.number(v)
	case []byte:
		start := len(d.t.buf)
		d.t.buf = base64.StdEncoding.AppendEncode(d.t.buf, v)
		return d.bufTail(start)
	case types.URI:
		return d.uri(&v.URL)
	case types.URIRef:
		return d.uri(&v.URL)
	case time.Time:
		return d.timeStr(v)
	case types.Timestamp:
		return d.timeStr(v.Time)
	case nil:
		return d.scalar(kNull)
	case fmt.Stringer:
		return d.str(v.String())
	default:
		s, err := types.Format(v)
		if err != nil {
			return refMissing
		}
		return d.str(s)
	}
}

// isJSONMediaType reports whether ct names JSON: application/json,
// text/json or any +json suffix, ignoring case and parameters.
func isJSONMediaType(ct string) bool {
	mt := mediaType(ct)
	return strings.EqualFold(mt, "application/json") || strings.EqualFold(mt, "text/json") ||
		len(mt) >= 5 && strings.EqualFold(mt[len(mt)-5:], "+json")
}

// isTextMediaType reports whether ct names text: text/* or any XML type.
func isTextMediaType(ct string) bool {
	mt := mediaType(ct)
	if len(mt) >= 5 && strings.EqualFold(mt[:5], "text/") {
		return true
	}
	for i := 0; i+3 <= len(mt); i++ {
		if strings.EqualFold(mt[i:i+3], "xml") {
			return true
		}
	}
	return false
}

func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}
