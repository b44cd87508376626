package pubsubwire

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Pub/Sub's limits on one message (cloud.google.com/pubsub/quotas, resource
// limits).
const (
	// MaxAttributes is the most attributes a message may carry.
	MaxAttributes = 100
	// MaxAttributeKeyBytes bounds an attribute key.
	MaxAttributeKeyBytes = 256
	// MaxAttributeValueBytes bounds an attribute value.
	MaxAttributeValueBytes = 1024
	// MaxOrderingKeyBytes bounds an ordering key.
	MaxOrderingKeyBytes = 1024
	// MaxMessageBytes bounds a message (data, attributes and ordering key)
	// and a whole publish request.
	MaxMessageBytes = 10_000_000
)

// Attribute names and media types of the binding.
const (
	// AttrPrefix starts the name of every binary-mode CloudEvents attribute.
	AttrPrefix = "ce-"
	// AttrContentType carries datacontenttype (binary mode) or the event
	// format (structured mode).
	AttrContentType = "content-type"
	// AttrContentTypeSDK is the same attribute as the CloudEvents Go SDK's
	// Pub/Sub binding (protocol/pubsub) spells it, and the only spelling
	// that binding reads.
	AttrContentTypeSDK = "Content-Type"
	// StructuredContentType is the content-type of a structured-mode message.
	StructuredContentType = "application/cloudevents+json; charset=UTF-8"
)

// Spelling is how Encode spells the attribute that carries datacontenttype
// (binary mode) or the event format (structured mode). Decode reads every
// spelling.
type Spelling int

const (
	// GoogleSpelling writes "content-type" (AttrContentType), as Google's
	// binding does: the default.
	GoogleSpelling Spelling = iota
	// SDKSpelling writes "Content-Type" (AttrContentTypeSDK): the CloudEvents
	// Go SDK's Pub/Sub binding reads the attribute case-sensitively, so with
	// Google's spelling it loses datacontenttype in binary mode and cannot
	// read structured mode at all.
	SDKSpelling
)

// String names the spelling as the provider's URL parameter does.
func (s Spelling) String() string {
	if s == SDKSpelling {
		return "sdk"
	}
	return "google"
}

// attr returns the content-type attribute's name in this spelling.
func (s Spelling) attr() string {
	if s == SDKSpelling {
		return AttrContentTypeSDK
	}
	return AttrContentType
}

// Mode is a CloudEvents content mode.
type Mode int

const (
	// Binary puts the attributes in message attributes and the data in the
	// message data. Encode falls back to Structured when the attributes do
	// not fit Pub/Sub's limits.
	Binary Mode = iota
	// Structured puts the whole event, in the JSON event format, in the
	// message data.
	Structured
)

// String names the mode.
func (m Mode) String() string {
	if m == Structured {
		return "structured"
	}
	return "binary"
}

// Message is the part of a Pub/Sub message the mapping reads and writes. ID,
// PublishTime and DeliveryAttempt are set by the service and only read.
type Message struct {
	Data        []byte
	Attributes  map[string]string
	OrderingKey string

	ID          string
	PublishTime time.Time
}

// Size is the message's size as Pub/Sub counts it against MaxMessageBytes:
// data, attribute keys and values, and the ordering key.
func (m *Message) Size() int {
	n := len(m.Data) + len(m.OrderingKey)
	for k, v := range m.Attributes {
		n += len(k) + len(v)
	}
	return n
}

// Encoder encodes events with a content mode and a spelling of the
// content-type attribute. The zero Encoder is binary mode with Google's
// spelling.
type Encoder struct {
	Mode     Mode
	Spelling Spelling
}

// Encode maps e onto a Pub/Sub message with Google's spelling of the
// content-type attribute; see Encoder.Encode.
func Encode(e *event.Event, mode Mode) (Message, Mode, error) {
	return Encoder{Mode: mode}.Encode(e)
}

// Encode maps e onto a Pub/Sub message in enc.Mode, or in structured mode when
// binary mode is asked for but the attributes do not fit; it returns the mode
// used. The partitionkey extension becomes the ordering key. It fails with an
// error matching driver.ErrInvalidEvent when the partition key is longer
// than MaxOrderingKeyBytes, and with a *crossbus.SizeError (matching
// driver.ErrTooLarge) when the message would exceed MaxMessageBytes.
func (enc Encoder) Encode(e *event.Event) (Message, Mode, error) {
	mode, ct := enc.Mode, enc.Spelling.attr()
	if e == nil || e.Context == nil {
		return Message{}, mode, &crossbus.ValidationError{Fields: []crossbus.FieldError{{Field: "event", Problem: "nil or without context"}}}
	}
	ctx := v1Context(e)
	var m Message
	if pk, ok := ctx.Extensions[crossbus.ExtPartitionKey]; ok {
		key, err := types.Format(pk)
		if err != nil {
			return m, mode, &crossbus.ValidationError{EventID: ctx.ID, Fields: []crossbus.FieldError{{Field: "extension partitionkey", Problem: err.Error()}}}
		}
		if len(key) > MaxOrderingKeyBytes {
			return m, mode, &crossbus.ValidationError{EventID: ctx.ID, Fields: []crossbus.FieldError{{Field: "extension partitionkey",
				Problem: fmt.Sprintf("%d bytes, over Pub/Sub's ordering key limit of %d bytes", len(key), MaxOrderingKeyBytes)}}}
		}
		m.OrderingKey = key
	}
	if mode == Binary {
		if attrs, ok := binaryAttributes(ctx, ct); ok {
			m.Attributes = attrs
			m.Data = e.DataEncoded
			return m, Binary, checkSize(ctx.ID, &m)
		}
	}
	body, err := structuredBody(e)
	if err != nil {
		return m, Structured, fmt.Errorf("pubsubwire: encode event %q as JSON: %w", ctx.ID, err)
	}
	m.Data = body
	m.Attributes = structuredAttributes(ctx, ct)
	return m, Structured, checkSize(ctx.ID, &m)
}

func checkSize(id string, m *Message) error {
	if n := m.Size(); n > MaxMessageBytes {
		return &crossbus.SizeError{EventID: id, Size: n, Limit: MaxMessageBytes}
	}
	return nil
}

// attr is one attribute of the binary form, in the order Encode writes them.
type attr struct{ key, value string }

// attributes lists the event's attributes in binary form: the core ones
// first (specversion, id, source, type, then the optional ones), then the
// extensions sorted by name.
func attributes(ctx *event.EventContextV1, dst []attr) []attr {
	dst = append(dst,
		attr{AttrPrefix + "specversion", event.CloudEventsVersionV1},
		attr{AttrPrefix + "id", ctx.ID},
		attr{AttrPrefix + "source", ctx.Source.String()},
		attr{AttrPrefix + "type", ctx.Type})
	if ctx.Subject != nil {
		dst = append(dst, attr{AttrPrefix + "subject", *ctx.Subject})
	}
	if ctx.Time != nil {
		dst = append(dst, attr{AttrPrefix + "time", types.FormatTime(ctx.Time.Time)})
	}
	if ctx.DataSchema != nil {
		dst = append(dst, attr{AttrPrefix + "dataschema", ctx.DataSchema.String()})
	}
	if ctx.DataContentType != nil {
		dst = append(dst, attr{AttrContentType, *ctx.DataContentType})
	}
	start := len(dst)
	for name, v := range ctx.Extensions {
		dst = append(dst, attr{AttrPrefix + name, formatValue(v)})
	}
	slices.SortFunc(dst[start:], func(a, b attr) int { return strings.Compare(a.key, b.key) })
	return dst
}

func fits(a attr) bool {
	return len(a.key) <= MaxAttributeKeyBytes && len(a.value) <= MaxAttributeValueBytes
}

// binaryAttributes returns the binary-mode attributes, or false when they
// break a Pub/Sub limit. It fills the map directly: this runs for every
// published event.
func binaryAttributes(ctx *event.EventContextV1, contentType string) (map[string]string, bool) {
	n := 4 + len(ctx.Extensions)
	for _, set := range [...]bool{ctx.Subject != nil, ctx.Time != nil, ctx.DataSchema != nil, ctx.DataContentType != nil} {
		if set {
			n++
		}
	}
	if n > MaxAttributes {
		return nil, false
	}
	out := make(map[string]string, n)
	put := func(k, v string) bool {
		if len(k) > MaxAttributeKeyBytes || len(v) > MaxAttributeValueBytes {
			return false
		}
		out[k] = v
		return true
	}
	ok := put(AttrPrefix+"specversion", event.CloudEventsVersionV1) &&
		put(AttrPrefix+"id", ctx.ID) &&
		put(AttrPrefix+"source", ctx.Source.String()) &&
		put(AttrPrefix+"type", ctx.Type)
	if ok && ctx.Subject != nil {
		ok = put(AttrPrefix+"subject", *ctx.Subject)
	}
	if ok && ctx.Time != nil {
		ok = put(AttrPrefix+"time", types.FormatTime(ctx.Time.Time))
	}
	if ok && ctx.DataSchema != nil {
		ok = put(AttrPrefix+"dataschema", ctx.DataSchema.String())
	}
	if ok && ctx.DataContentType != nil {
		ok = put(contentType, *ctx.DataContentType)
	}
	for name, v := range ctx.Extensions {
		if !ok {
			break
		}
		ok = put(AttrPrefix+name, formatValue(v))
	}
	return out, ok
}

func formatValue(v any) string {
	if s, isString := v.(string); isString {
		return s
	}
	s, err := types.Format(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return s
}

// structuredAttributes is the format's content-type (named contentType)
// plus every binary attribute that fits, except specversion and
// datacontenttype, so that subscription filters keep working.
func structuredAttributes(ctx *event.EventContextV1, contentType string) map[string]string {
	var buf [16]attr
	list := attributes(ctx, buf[:0])
	out := map[string]string{contentType: StructuredContentType}
	for _, a := range list {
		if len(out) >= MaxAttributes {
			break
		}
		if a.key == AttrPrefix+"specversion" || a.key == AttrContentType || !fits(a) {
			continue
		}
		out[a.key] = a.value
	}
	return out
}

// structuredBody renders e in the JSON event format, base64-encoding data
// that could not be written as JSON or as a JSON string as it is.
func structuredBody(e *event.Event) ([]byte, error) {
	return cewire.MarshalStructured(e)
}

// mediaType returns the lower-case media type of a content type, without
// parameters.
func mediaType(ct string) string { return cewire.MediaType(ct) }

// isTextual reports whether data of content type ct is text, so that the
// JSON event format may carry it as a string rather than base64.
func isTextual(ct string) bool {
	mt := mediaType(ct)
	if mt == "" {
		return true
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json") ||
		strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+xml") || mt == "application/xml"
}

// v1Context returns the event's context as version 1.0 (converting older
// versions into a copy).
func v1Context(e *event.Event) *event.EventContextV1 {
	if c, ok := e.Context.(*event.EventContextV1); ok {
		return c
	}
	return e.Context.AsV1()
}
