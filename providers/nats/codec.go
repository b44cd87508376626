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
)

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

// EncodeMsg maps an event onto a NATS message for subject in binary content
// mode: ce- headers, the data as payload, and Nats-Msg-Id for
// de-duplication.
func EncodeMsg(subject string, e *driver.Event) (*natsio.Msg, error) {
	ctx, ok := e.Context.(*event.EventContextV1) // AsV1 would copy it
	if !ok || ctx == nil {
		return nil, fmt.Errorf("nats: event has no CloudEvents 1.0 context")
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
	set := func(name, v string) {
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(headerSpecVersion, event.CloudEventsVersionV1)
	set("ce-id", encodeHeaderValue(ctx.ID))
	source := ctx.Source.String()
	set("ce-source", encodeHeaderValue(source))
	set("ce-type", encodeHeaderValue(ctx.Type))
	if ctx.Subject != nil {
		set("ce-subject", encodeHeaderValue(*ctx.Subject))
	}
	if ctx.Time != nil {
		set("ce-time", ctx.Time.Time.UTC().Format(time.RFC3339Nano))
	}
	if ctx.DataSchema != nil {
		set("ce-dataschema", encodeHeaderValue(ctx.DataSchema.String()))
	}
	if ctx.DataContentType != nil {
		set("ce-datacontenttype", encodeHeaderValue(*ctx.DataContentType))
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
		set(headerPrefix+name, encodeHeaderValue(s))
	}
	set(headerMsgID, encodeHeaderValue(msgID(ctx.ID, source)+republished(ctx.Extensions)))
	return &natsio.Msg{Subject: subject, Header: h, Data: e.DataEncoded}, nil
}

// DecodeMsg reads the CloudEvent carried by a NATS message's headers and
// payload into e. Binary content mode (a ce-specversion header) and
// structured content mode (content-type application/cloudevents+json, the
// event as JSON payload) are both read. Header names are matched without
// regard to case. The error names the header that is wrong. When e already
// holds a *EventContextV1 it is reused (decoding then allocates less); after
// an error e is undefined.
func DecodeMsg(h natsio.Header, data []byte, e *driver.Event) error {
	ctx, _ := e.Context.(*event.EventContextV1)
	if ctx == nil {
		ctx = new(event.EventContextV1)
	} else {
		*ctx = event.EventContextV1{}
	}
	var found, structured, hasVersion bool
	var contentType string
	for key, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if len(key) > len(headerPrefix) && strings.EqualFold(key[:len(headerPrefix)], headerPrefix) {
			found = true
			v, err := decodeHeaderValue(vs[0])
			if err != nil {
				return fmt.Errorf("nats: header %q: %w", key, err)
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
			contentType = vs[0]
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), mediaTypeStructured) {
				structured = true
			}
		}
	}
	if !found {
		if !structured {
			return fmt.Errorf("nats: %w: no %s header and content-type %q is not %s+json", errNotCloudEvent, headerSpecVersion, contentType, mediaTypeStructured)
		}
		return decodeStructured(data, e)
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

// encodeHeaderValue percent-encodes what a NATS header value cannot carry
// as it is: control characters (CR and LF would end the header line), DEL,
// a leading space (the protocol strips it) and '%' itself, so decoding is
// unambiguous. Everything else, spaces and UTF-8 included, is sent as it is:
// readers that percent-decode as the CloudEvents binding describes get the
// same value as readers that do not decode at all (such as the CloudEvents
// Go SDK), except for the rare values that needed an escape.
func encodeHeaderValue(s string) string {
	i := 0
	for i < len(s) && !mustEscape(s, i) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if mustEscape(s, i) {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func mustEscape(s string, i int) bool {
	c := s[i]
	return c < ' ' || c == 0x7f || c == '%' || c == ' ' && i == 0
}

// decodeHeaderValue undoes encodeHeaderValue. A '%' not followed by two hex
// digits is kept as it is (writers that do not encode, such as the
// CloudEvents Go SDK, may send one); the result must be valid UTF-8.
func decodeHeaderValue(s string) (string, error) {
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
