package nats

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	natsio "github.com/nats-io/nats.go"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Header names of the CloudEvents NATS protocol binding (binary content mode):
// every context attribute and extension travels as a "ce-" header, the data
// as the message payload. datacontenttype is written as ce-datacontenttype,
// as the CloudEvents Go SDK's NATS and JetStream bindings write it; a
// "content-type" header is read as datacontenttype when ce-datacontenttype is
// absent.
const (
	headerPrefix      = "ce-"
	headerSpecVersion = "ce-specversion"
	headerContentType = "content-type"
	// headerMsgID is JetStream's publish de-duplication header.
	headerMsgID = "Nats-Msg-Id"

	// mediaTypeStructured marks a structured-mode message (the JSON event
	// format in the payload).
	mediaTypeStructured = "application/cloudevents"
	// contentTypeStructured is the content-type of the structured-mode
	// messages crossbus writes.
	contentTypeStructured = "application/cloudevents+json; charset=utf-8"
)

// HeaderValues is how the values of "ce-" headers are written and read.
// Every party on a subject must use the same policy: a reader cannot tell an
// escaped value from a verbatim one.
type HeaderValues int

const (
	// HeaderValuesVerbatim (the default) writes each attribute's canonical
	// string as it is and reads header values as they arrive, which is what
	// the CloudEvents Go SDK's NATS and JetStream bindings (and the NATS
	// binding's binary mode as those SDKs implement it) do: a '%', a space
	// or a non-ASCII character reaches every reader unchanged. An event with
	// a value a NATS header cannot carry as it is (a control character such
	// as a line break, or a leading or trailing space, which NATS clients
	// strip) is written in structured content mode instead, so that nothing
	// is altered on the way.
	HeaderValuesVerbatim HeaderValues = iota
	// HeaderValuesPercent percent-encodes header values as the working
	// draft of the NATS binding (1.0.3-wip, section 3.1.3.2) prescribes:
	// space, double quote, '%' and every byte outside printable ASCII
	// become %XX (upper-case hex digits, UTF-8 bytes). Reading undoes a
	// double-quoted value's quoting and then one round of percent-encoding
	// (lower-case hex accepted; a decoded value that is not UTF-8 is
	// refused; a '%' not followed by two hex digits stays as it is).
	HeaderValuesPercent
)

// String names the policy as the headervalues URL parameter does.
func (v HeaderValues) String() string {
	if v == HeaderValuesPercent {
		return "percent"
	}
	return "verbatim"
}

// Codec maps events onto NATS messages and back with one header-value
// policy. The zero Codec is the default (HeaderValuesVerbatim); EncodeMsg
// and DecodeMsg use it.
type Codec struct {
	HeaderValues HeaderValues
}

// errNotCloudEvent is wrapped by decode errors for messages that carry no
// CloudEvent at all (neither binary nor structured mode).
var errNotCloudEvent = errors.New("not a CloudEvent")

// MsgID returns the value crossbus puts in a message's Nats-Msg-Id header for
// e: the event's id scoped by its source (the CloudEvents uniqueness rule),
// written as "<length of id>:<id><source>" so that no two (id, source) pairs
// collide. JetStream drops a re-publish of the same event inside the stream's
// duplicate window, but never two different events that share an id. An
// event re-published on purpose by an operations tool (carrying the
// redriven or replayed extension of package ops) gets that value appended,
// so a redrive or replay inside the window is not dropped as a duplicate.
func MsgID(e *driver.Event) string {
	id := msgID(e.ID(), e.Source())
	if v1, ok := e.Context.(*event.EventContextV1); ok && v1 != nil && len(v1.Extensions) > 0 {
		id += republished(v1.Extensions)
	}
	return id
}

// republished is the Nats-Msg-Id suffix of an event that operations
// re-published ("" for others).
func republished(ext map[string]any) string {
	var s string
	for _, name := range [...]string{"redriven", "replayed"} {
		if v, ok := ext[name]; ok {
			f, _ := types.Format(v)
			s += "#" + name + "=" + f
		}
	}
	return s
}

func msgID(id, source string) string {
	var b strings.Builder
	b.Grow(len(id) + len(source) + 4)
	b.WriteString(strconv.Itoa(len(id)))
	b.WriteByte(':')
	b.WriteString(id)
	b.WriteString(source)
	return b.String()
}

// EncodeMsg maps an event onto a NATS message for subject with the default
// Codec: binary content mode (ce- headers, the data as payload) unless a
// value cannot travel verbatim in a header, and Nats-Msg-Id for
// de-duplication.
func EncodeMsg(subject string, e *driver.Event) (*natsio.Msg, error) {
	return Codec{}.Encode(subject, e)
}

// DecodeMsg reads the CloudEvent carried by a NATS message with the default
// Codec; see Codec.Decode.
func DecodeMsg(h natsio.Header, data []byte, e *driver.Event) error {
	return Codec{}.Decode(h, data, e)
}

// Encode maps an event onto a NATS message for subject in binary content
// mode: ce- headers valued by the codec's HeaderValues policy, the data as
// payload, and Nats-Msg-Id for de-duplication. Under HeaderValuesVerbatim an
// event with a value no header can carry as it is goes in structured content
// mode: the JSON event format as payload, with content-type
// application/cloudevents+json and Nats-Msg-Id as its only headers.
func (c Codec) Encode(subject string, e *driver.Event) (*natsio.Msg, error) {
	ctx, ok := e.Context.(*event.EventContextV1) // AsV1 would copy it
	if !ok || ctx == nil {
		return nil, fmt.Errorf("nats: event has no CloudEvents 1.0 context")
	}
	percent := c.HeaderValues == HeaderValuesPercent
	value := func(s string) (string, bool) {
		if percent {
			return percentEncode(s), true
		}
		return s, verbatimOK(s)
	}
	n := 5 + len(ctx.Extensions) // specversion, id, source, type, Nats-Msg-Id
	for _, present := range [...]bool{ctx.Subject != nil, ctx.Time != nil, ctx.DataSchema != nil, ctx.DataContentType != nil} {
		if present {
			n++
		}
	}
	h := make(natsio.Header, n)
	// One backing array for every header's single value.
	vals := make([]string, 0, n)
	fits := true
	set := func(name, v string) {
		v, ok := value(v)
		fits = fits && ok
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(headerSpecVersion, event.CloudEventsVersionV1)
	set("ce-id", ctx.ID)
	source := ctx.Source.String()
	set("ce-source", source)
	set("ce-type", ctx.Type)
	if ctx.Subject != nil {
		set("ce-subject", *ctx.Subject)
	}
	if ctx.Time != nil {
		set("ce-time", ctx.Time.Time.UTC().Format(time.RFC3339Nano))
	}
	if ctx.DataSchema != nil {
		set("ce-dataschema", ctx.DataSchema.String())
	}
	if ctx.DataContentType != nil {
		set("ce-datacontenttype", *ctx.DataContentType)
	}
	for name, v := range ctx.Extensions {
		var s string
		if str, ok := v.(string); ok {
			s = str
		} else {
			var err error
			if s, err = types.Format(v); err != nil {
				return nil, fmt.Errorf("nats: event %q: extension %q: %w", ctx.ID, name, err)
			}
		}
		set(headerPrefix+name, s)
	}
	id := escapeMsgID(msgID(ctx.ID, source) + republished(ctx.Extensions))
	if !fits {
		return encodeStructured(subject, e, id)
	}
	vals = append(vals, id)
	h[headerMsgID] = vals[len(vals)-1 : len(vals) : len(vals)]
	return &natsio.Msg{Subject: subject, Header: h, Data: e.DataEncoded}, nil
}

// encodeStructured writes e in structured content mode.
func encodeStructured(subject string, e *driver.Event, msgID string) (*natsio.Msg, error) {
	body, err := cewire.MarshalStructured(e)
	if err != nil {
		return nil, fmt.Errorf("nats: event %q in the JSON event format: %w", e.ID(), err)
	}
	h := natsio.Header{headerContentType: {contentTypeStructured}, headerMsgID: {msgID}}
	return &natsio.Msg{Subject: subject, Header: h, Data: body}, nil
}

// Decode reads the CloudEvent carried by a NATS message's headers and
// payload into e. Binary content mode (a ce-specversion header; values read
// by the codec's HeaderValues policy) and structured content mode are both
// read: a payload in the JSON event format with content-type
// application/cloudevents+json (the NATS binding's working draft), or with
// no ce- and no content-type header at all (the released NATS binding,
// 1.0.2, which defines structured mode only, and what the CloudEvents Go SDK
// sends in structured mode). Header names are matched without regard to
// case. The error names the header that is wrong. When e already holds a
// *EventContextV1 it is reused (decoding then allocates less); after an
// error e is undefined.
func (c Codec) Decode(h natsio.Header, data []byte, e *driver.Event) error {
	ctx, _ := e.Context.(*event.EventContextV1)
	if ctx == nil {
		ctx = new(event.EventContextV1)
	} else {
		*ctx = event.EventContextV1{}
	}
	percent := c.HeaderValues == HeaderValuesPercent
	var found, structured, hasVersion, hasContentType bool
	var contentType string
	for key, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if len(key) > len(headerPrefix) && strings.EqualFold(key[:len(headerPrefix)], headerPrefix) {
			found = true
			v := vs[0]
			if percent {
				var err error
				if v, err = percentDecode(v); err != nil {
					return fmt.Errorf("nats: header %q: %w", key, err)
				}
			}
			name := strings.ToLower(key[len(headerPrefix):])
			if name == "specversion" {
				hasVersion = true
			}
			if err := setAttribute(ctx, name, v); err != nil {
				return fmt.Errorf("nats: header %q: %w", key, err)
			}
			continue
		}
		if strings.EqualFold(key, headerContentType) {
			contentType, hasContentType = vs[0], true
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), mediaTypeStructured) {
				structured = true
			}
		}
	}
	if !found {
		switch {
		case structured:
			return decodeStructured(data, e)
		case !hasContentType && looksLikeJSONObject(data):
			return decodeStructured(data, e)
		case hasContentType:
			return fmt.Errorf("nats: %w: no %s header and content-type %q is not %s+json", errNotCloudEvent, headerSpecVersion, contentType, mediaTypeStructured)
		}
		return fmt.Errorf("nats: %w: no %s header, no content-type, and the payload is not an event in the JSON format", errNotCloudEvent, headerSpecVersion)
	}
	if !hasVersion {
		return fmt.Errorf("nats: %w: header %s missing", errNotCloudEvent, headerSpecVersion)
	}
	if ctx.DataContentType == nil && contentType != "" && !structured {
		ct := contentType
		ctx.DataContentType = &ct
	}
	if err := checkRequired(ctx); err != nil {
		return err
	}
	e.Context = ctx
	e.DataEncoded = nil
	if len(data) > 0 {
		e.DataEncoded = data
	}
	e.DataBase64 = false
	e.FieldErrors = nil
	return nil
}

// looksLikeJSONObject reports whether data starts, after white space, with
// '{': the payload of a structured-mode message without headers.
func looksLikeJSONObject(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

func decodeStructured(data []byte, e *driver.Event) error {
	var ev event.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("nats: structured-mode payload: %w", err)
	}
	if ev.SpecVersion() != event.CloudEventsVersionV1 {
		return fmt.Errorf("nats: structured-mode payload: specversion %q is not %q", ev.SpecVersion(), event.CloudEventsVersionV1)
	}
	ctx := ev.Context.AsV1()
	if err := checkRequired(ctx); err != nil {
		return err
	}
	*e = ev
	return nil
}

func checkRequired(ctx *event.EventContextV1) error {
	return cewire.CheckRequired(ctx, "nats", "ce-")
}

// setAttribute sets one attribute read from the wire (name without prefix,
// lower case).
func setAttribute(ctx *event.EventContextV1, name, v string) error {
	return cewire.SetAttribute(ctx, name, v, sources)
}

// verbatimOK reports whether s travels in a NATS header value unchanged:
// NATS clients end a header at CR or LF (nats.go replaces them with spaces)
// and strip white space around a value, and control characters are not
// header text.
func verbatimOK(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

const upperHex = "0123456789ABCDEF"

// percentEncode encodes s by the NATS binding's working draft: space, '"',
// '%' and every byte outside printable ASCII (control characters and the
// bytes of non-ASCII UTF-8 characters) become %XX.
func percentEncode(s string) string {
	i := 0
	for i < len(s) && !percentEscaped(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if percentEscaped(c) {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func percentEscaped(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}

// percentDecode undoes percentEncode after removing the quoting of a
// double-quoted value (RFC 7230, section 3.2.6), as the working draft asks
// of readers. A '%' not followed by two hex digits is kept as it is; the
// result must be valid UTF-8.
func percentDecode(s string) (string, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = unquote(s[1 : len(s)-1])
	}
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("percent-decoded value is not UTF-8")
	}
	return string(b), nil
}

// unquote removes the backslash escapes of a quoted string's content.
func unquote(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

// escapeMsgID makes a Nats-Msg-Id value of id: control characters, DEL,
// '%' and a leading or trailing space percent-encoded, so that distinct ids
// stay distinct on the wire. The value is only compared by the server,
// never decoded.
func escapeMsgID(s string) string {
	i := 0
	for i < len(s) && !msgIDEscaped(s, i) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if msgIDEscaped(s, i) {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func msgIDEscaped(s string, i int) bool {
	c := s[i]
	return c < ' ' || c == 0x7f || c == '%' || c == ' ' && (i == 0 || i == len(s)-1)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
