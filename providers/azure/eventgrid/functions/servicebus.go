package functions

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/cewire"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
)

// ForeignEventType is the CloudEvents type of a Service Bus message without
// CloudEvents attributes, the same as the Service Bus provider gives it.
const ForeignEventType = "com.microsoft.servicebus.message"

// serviceBusMessage turns the i-th (or, for i < 0, the only) message of a
// Service Bus invocation into an event, with its delivery count as the
// attempt. The mapping is the Service Bus provider's:
//
//   - content type application/cloudevents*: the body is a structured
//     CloudEvent;
//   - application properties prefixed cloudEvents_ or cloudEvents: (the AMQP
//     binding's binary mode; both separators are read): each names an
//     attribute or extension (a missing id is the MessageId), the body is the
//     data and the message's content type its datacontenttype;
//   - otherwise: id <- MessageId (or "<Entity>/<SequenceNumber>", or, when
//     the host passes neither, "<Entity>/sha256-<digest>": see
//     messageDigest), source <-
//     "/<Entity>", type <- ForeignEventType, time <- EnqueuedTimeUtc,
//     subject <- Subject (Label), datacontenttype <- ContentType, data <-
//     body, partitionkey <- SessionId, and each application property whose
//     name is a valid extension name becomes an extension.
//
// A message that claims to be a CloudEvent (either form) and is not a valid
// one is undecodable: its Invocation carries the reason and a placeholder
// event (id and source as for a message without CloudEvents attributes,
// the body as data, the application properties and content type in the
// rawheaders extension). Errors are for invocations that are malformed.
//
// seen counts the digests given so far in the invocation, so that identical
// messages without a MessageId or SequenceNumber in one batch get distinct
// ids; it may be nil for a single message.
func (f *Function) serviceBusMessage(raw json.RawMessage, meta metadata, i int, seen map[string]int) (Invocation, error) {
	where := f.Name
	if i >= 0 {
		where = fmt.Sprintf("%s message %d", f.Name, i)
	}
	body, err := bodyBytes(raw, f.DataType)
	if err != nil {
		return Invocation{}, fmt.Errorf("functions: %s: body: %w", where, err)
	}
	attempt := 1
	if n, ok := meta.int("DeliveryCount", i); ok && n > 0 {
		attempt = n
	} else if i < 0 {
		attempt = meta.retryAttempt()
	}
	props, err := meta.object("ApplicationProperties", i)
	if err == nil && props == nil {
		props, err = meta.object("UserProperties", i)
	}
	if err != nil {
		return Invocation{}, fmt.Errorf("functions: %s: %w", where, err)
	}
	msg := sbMessage{
		body: body, props: props, entity: f.Entity,
		contentType: meta.str("ContentType", i),
		messageID:   meta.str("MessageId", i),
		subject:     firstNonEmpty(meta.str("Subject", i), meta.str("Label", i)),
		sessionID:   meta.str("SessionId", i),
		sequence:    meta.str("SequenceNumber", i),
		enqueued:    meta.str("EnqueuedTimeUtc", i),
	}
	if msg.messageID == "" && msg.sequence == "" {
		msg.digest = msg.messageDigest()
		if seen != nil {
			seen[msg.digest]++
			if n := seen[msg.digest]; n > 1 {
				msg.digest += "#" + strconv.Itoa(n)
			}
		}
	}
	ev, err := msg.event()
	if err != nil {
		return Invocation{Event: msg.undecodable(), Attempt: attempt, DecodeError: fmt.Errorf("functions: %s: %w", where, err)}, nil
	}
	return Invocation{Event: ev, Attempt: attempt}, nil
}

// undecodable is the placeholder of a message that claims to be a
// CloudEvent and is not one.
func (m sbMessage) undecodable() *crossbus.Event {
	f := event.New()
	m.foreign(&f) // the id and source a message without CloudEvents attributes gets
	headers := make(map[string]string, len(m.props)+1)
	for k, v := range m.props {
		if s, ok := v.(string); ok {
			headers[k] = s
		} else {
			headers[k] = fmt.Sprint(v)
		}
	}
	if m.contentType != "" {
		headers["content-type"] = m.contentType
	}
	e := driver.NewUndecodableEvent(f.ID(), f.Source(), m.body, headers)
	return &e
}

type sbMessage struct {
	body                                    []byte
	props                                   map[string]any
	entity, contentType, messageID, subject string
	sessionID, sequence, enqueued           string
	// digest identifies a message without MessageId and SequenceNumber.
	digest string
}

// messageDigest identifies a message that the host passed without a
// MessageId or a SequenceNumber by what it carries: a SHA-256 over its
// enqueued time, session, content type, subject, application properties
// and body. A redelivery of the message has the same digest, so the
// idempotency middleware recognises it; different messages have different
// ones. Identical messages in one batch are told apart by their order
// ("#2", "#3", ...); identical messages in separate invocations, with the
// same enqueued time, are taken for one.
func (m sbMessage) messageDigest() string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	props, _ := json.Marshal(m.props) // map keys are sorted: the same properties, the same bytes
	for _, s := range []string{m.enqueued, m.sessionID, m.contentType, m.subject} {
		field([]byte(s))
	}
	field(props)
	field(m.body)
	return "sha256-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (m sbMessage) event() (*crossbus.Event, error) {
	if strings.HasPrefix(strings.ToLower(m.contentType), "application/cloudevents") {
		return eventgrid.DecodeCloudEvent(m.body)
	}
	attrs := map[string]any{}
	for k, v := range m.props {
		if name, ok := cewire.AMQPAttributeName(k); ok {
			attrs[name] = v
		}
	}
	e := event.New()
	if len(attrs) > 0 {
		if err := binaryMode(&e, attrs); err != nil {
			return nil, err
		}
		if e.ID() == "" {
			e.SetID(m.messageID)
		}
	} else {
		m.foreign(&e)
	}
	if ct, ok := attrs["datacontenttype"].(string); ok && ct != "" {
		e.SetDataContentType(ct)
	} else if m.contentType != "" {
		e.SetDataContentType(m.contentType)
	}
	if len(m.body) > 0 || m.contentType != "" {
		e.DataEncoded = m.body
		e.DataBase64 = m.contentType != "" && !textual(e.DataContentType())
	}
	if err := crossbus.Validate(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

// foreign maps a message without CloudEvents attributes.
func (m sbMessage) foreign(e *event.Event) {
	entity := strings.TrimPrefix(m.entity, "/")
	id := m.messageID
	switch {
	case id != "":
	case m.sequence != "":
		id = entity + "/" + m.sequence
	case m.digest != "":
		id = entity + "/" + m.digest
	default:
		id = entity + "/" + m.messageDigest()
	}
	e.SetID(id)
	if entity == "" {
		e.SetSource("/servicebus")
	} else {
		e.SetSource("/" + entity)
	}
	e.SetType(ForeignEventType)
	if t, err := parseTime(m.enqueued); err == nil {
		e.SetTime(t)
	}
	if strings.TrimSpace(m.subject) != "" {
		e.SetSubject(m.subject)
	}
	for k, v := range m.props {
		if cewire.ValidExtensionName(k) {
			_ = e.Context.SetExtension(k, extensionValue(v)) // context attribute names are refused: fine
		}
	}
	if m.sessionID != "" {
		e.SetExtension(crossbus.ExtPartitionKey, m.sessionID)
	}
}

// binaryMode sets the attributes the cloudEvents_ properties carry.
func binaryMode(e *event.Event, attrs map[string]any) error {
	if sv, _ := attrs["specversion"].(string); sv != event.CloudEventsVersionV1 {
		return fmt.Errorf("cloudEvents_specversion is %v, want %q", attrs["specversion"], event.CloudEventsVersionV1)
	}
	ctx := e.Context.(*event.EventContextV1) // event.New makes a V1 context
	for name, v := range attrs {
		s, isString := v.(string)
		switch {
		case name == "specversion" || name == "datacontenttype": // checked above; set by the caller
		case name == "time":
			t, err := parseTime(s)
			if !isString || err != nil {
				return fmt.Errorf("cloudEvents_time %v is not an RFC 3339 time", v)
			}
			e.SetTime(t)
		case isString:
			if err := cewire.SetAttribute(ctx, name, s, sources); err != nil {
				return fmt.Errorf("cloudEvents_%s: %w", name, err)
			}
		case cewire.IsContextAttribute(name):
			return fmt.Errorf("cloudEvents_%s %v is not a string", name, v)
		default:
			if err := e.Context.SetExtension(name, extensionValue(v)); err != nil {
				return fmt.Errorf("cloudEvents_%s: %w", name, err)
			}
		}
	}
	return nil
}

// sources caches the parsed sources of binary-mode messages.
var sources = cewire.NewSourceCache(1024)

// extensionValue converts a JSON property value to a CloudEvents type:
// integral numbers to Integer, other numbers to their text.
func extensionValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
			return int32(n)
		}
		return x.String()
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return v
}

// parseTime reads RFC 3339, and .NET's zone-less form as UTC.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02T15:04:05.9999999", s)
}

func textual(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "xml")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
