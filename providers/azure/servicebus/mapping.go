package servicebus

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Application property prefixes of the CloudEvents AMQP binding. Messages
// are written with PropertyPrefix; both are read.
const (
	// PropertyPrefix is written before every CloudEvents attribute name.
	PropertyPrefix = cewire.AMQPPrefix
	// PropertyPrefixColon is the binding's other prefix, accepted on read.
	PropertyPrefixColon = cewire.AMQPPrefixColon

	// ForeignEventType is the type given to messages that carry no
	// CloudEvents attributes (see EventFromMessage).
	ForeignEventType = "com.microsoft.servicebus.message"

	structuredPrefix = "application/cloudevents"
)

// MessageFromEvent maps an event to a Service Bus message in the CloudEvents
// AMQP binding's binary mode: data in the body, datacontenttype as
// ContentType, every other attribute as an application property named with
// PropertyPrefix. MessageID is the event id (so Service Bus duplicate
// detection recognises a re-published event), SessionID the partitionkey
// extension (so session-enabled entities keep per-key order), and Subject
// the event's subject.
func MessageFromEvent(e *driver.Event) (*azservicebus.Message, error) {
	return messageFromEvent(e, PropertyPrefix)
}

func messageFromEvent(e *driver.Event, prefix string) (*azservicebus.Message, error) {
	ctx, ok := e.Context.(*event.EventContextV1)
	if !ok || ctx == nil {
		return nil, fmt.Errorf("servicebus: event %q is not a CloudEvents 1.0 event", e.ID())
	}
	props := make(map[string]any, 6+len(ctx.Extensions))
	props[prefix+"specversion"] = event.CloudEventsVersionV1
	props[prefix+"id"] = ctx.ID
	props[prefix+"source"] = ctx.Source.String()
	props[prefix+"type"] = ctx.Type
	m := &azservicebus.Message{ApplicationProperties: props, Body: e.DataEncoded}
	id := ctx.ID
	m.MessageID = &id
	if ctx.Subject != nil {
		props[prefix+"subject"] = *ctx.Subject
		m.Subject = ctx.Subject
	}
	if ctx.Time != nil {
		props[prefix+"time"] = types.FormatTime(ctx.Time.Time)
	}
	if ctx.DataSchema != nil {
		props[prefix+"dataschema"] = ctx.DataSchema.String()
	}
	if ctx.DataContentType != nil {
		ct := *ctx.DataContentType
		m.ContentType = &ct
	}
	for name, v := range ctx.Extensions {
		pv, err := propertyValue(v)
		if err != nil {
			return nil, fmt.Errorf("servicebus: event %q extension %q: %w", ctx.ID, name, err)
		}
		props[prefix+name] = pv
	}
	if key, ok := ctx.Extensions[crossbus.ExtPartitionKey].(string); ok && key != "" {
		m.SessionID = &key
	}
	return m, nil
}

// propertyValue is an attribute value in its AMQP form: booleans, integers
// (as long), strings and binary natively; URIs and timestamps as their
// canonical strings, which keeps a timestamp's full precision.
func propertyValue(v any) (any, error) {
	switch x := v.(type) {
	case string, bool, []byte:
		return x, nil
	case int32:
		return int64(x), nil
	case types.Timestamp:
		return types.FormatTime(x.Time), nil
	case time.Time:
		return types.FormatTime(x), nil
	}
	s, err := types.Format(v)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// EventFromMessage maps a received message to an event. path is the entity
// the message was sent to (a queue or topic name), used for messages that
// are not CloudEvents.
//
// A message is read in the AMQP binding's structured mode when its
// ContentType starts with "application/cloudevents" (the body is the JSON
// event), and in binary mode when it has application properties prefixed
// "cloudEvents_" or "cloudEvents:" (missing id taken from MessageID).
// Any other message becomes an event by this rule: id = MessageID (or
// "<path>/<sequence number>" when empty), source = "/" + path, type =
// ForeignEventType, time = EnqueuedTime, subject = Subject, datacontenttype
// = ContentType, data = the body, partitionkey = SessionID, and each
// application property whose name is a valid extension name (lower-case
// letters and digits) and whose value has a CloudEvents type becomes an
// extension.
func EventFromMessage(m *azservicebus.ReceivedMessage, path string) (*driver.Event, error) {
	if m.ContentType != nil && strings.HasPrefix(strings.ToLower(*m.ContentType), structuredPrefix) {
		return structuredEvent(m)
	}
	ctx := &event.EventContextV1{}
	binding := false
	var errs []error
	for k, v := range m.ApplicationProperties {
		name, ok := cewire.AMQPAttributeName(k)
		if !ok {
			continue
		}
		binding = true
		if err := setAttribute(ctx, name, v); err != nil {
			errs = append(errs, fmt.Errorf("application property %q: %w", k, err))
		}
	}
	if !binding {
		return foreignEvent(m, path)
	}
	if ctx.ID == "" {
		ctx.ID = m.MessageID
	}
	if m.ContentType != nil && *m.ContentType != "" {
		ct := *m.ContentType
		ctx.DataContentType = &ct
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("servicebus: message %q: %w", m.MessageID, errors.Join(errs...))
	}
	e := event.Event{Context: ctx}
	setBody(&e, m.Body, ctx.DataContentType)
	if err := crossbus.Validate(&e); err != nil {
		return nil, fmt.Errorf("servicebus: message %q: %w", m.MessageID, err)
	}
	return &e, nil
}

// setAttribute sets one context attribute or extension from its AMQP value:
// a string as the binding's text, a time as the time attribute, another
// value of a context attribute as its text, and of an extension as the
// CloudEvents type it maps onto.
func setAttribute(ctx *event.EventContextV1, name string, v any) error {
	switch x := v.(type) {
	case nil:
		return errors.New("is null")
	case string:
		return cewire.SetAttribute(ctx, name, x, sources)
	case time.Time:
		if name == "time" {
			ctx.Time = &types.Timestamp{Time: x.UTC()}
			return nil
		}
	}
	if name == "time" {
		return fmt.Errorf("time has type %T", v)
	}
	if cewire.IsContextAttribute(name) {
		return cewire.SetAttribute(ctx, name, fmt.Sprint(v), sources)
	}
	ev, err := extensionValue(v)
	if err != nil {
		return err
	}
	return ctx.SetExtension(name, ev)
}

// sources caches the parsed sources of received events.
var sources = cewire.NewSourceCache(1024)

// extensionValue converts an AMQP property value to a CloudEvents one.
func extensionValue(v any) (any, error) {
	switch x := v.(type) {
	case string, bool, []byte, int32:
		return x, nil
	case int64:
		if x < math.MinInt32 || x > math.MaxInt32 {
			return strconv.FormatInt(x, 10), nil
		}
		return int32(x), nil
	case int8, int16, uint8, uint16, uint32, uint64, int, float32, float64:
		if iv, err := types.Validate(x); err == nil {
			return iv, nil
		}
		return fmt.Sprint(x), nil
	case time.Time:
		return types.Timestamp{Time: x.UTC()}, nil
	case nil:
		return nil, errors.New("is null")
	}
	return fmt.Sprint(v), nil
}

// setBody sets data from the message body.
func setBody(e *driver.Event, body []byte, contentType *string) {
	if len(body) == 0 && contentType == nil {
		return
	}
	e.DataEncoded = body
	e.DataBase64 = contentType != nil && !textual(*contentType)
}

func textual(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "xml")
}

func structuredEvent(m *azservicebus.ReceivedMessage) (*driver.Event, error) {
	var e event.Event
	if err := json.Unmarshal(m.Body, &e); err != nil {
		return nil, fmt.Errorf("servicebus: message %q: structured CloudEvent: %w", m.MessageID, err)
	}
	if err := crossbus.Validate(&e); err != nil {
		return nil, fmt.Errorf("servicebus: message %q: %w", m.MessageID, err)
	}
	return &e, nil
}

// messageID is the id of an event made from a message that carries none of
// its own: MessageID, or "<path>/<sequence number>".
func messageID(m *azservicebus.ReceivedMessage, path string) string {
	if m.MessageID != "" {
		return m.MessageID
	}
	seq := int64(0)
	if m.SequenceNumber != nil {
		seq = *m.SequenceNumber
	}
	return path + "/" + strconv.FormatInt(seq, 10)
}

// entitySource is the source of an event made from a message of path:
// "/" + path ("/servicebus" when that is not a URI reference).
func entitySource(path string) *url.URL {
	src, err := url.Parse("/" + strings.TrimPrefix(path, "/"))
	if err != nil || path == "" {
		src = &url.URL{Path: "/servicebus"}
	}
	return src
}

// UndecodableEvent is the placeholder (driver.NewUndecodableEvent) of a
// message that claims to be a CloudEvent (structured content type, or
// cloudEvents_ application properties) and is not a valid one: id =
// MessageID (or "<path>/<sequence number>"), source = "/" + path, data = the
// body, and the application properties (values as strings) with the
// message's content-type in the rawheaders extension.
func UndecodableEvent(m *azservicebus.ReceivedMessage, path string) *driver.Event {
	var headers map[string]string
	if len(m.ApplicationProperties) > 0 || m.ContentType != nil {
		headers = make(map[string]string, len(m.ApplicationProperties)+1)
		for k, v := range m.ApplicationProperties {
			switch x := v.(type) {
			case string:
				headers[k] = x
			case time.Time:
				headers[k] = types.FormatTime(x)
			case []byte:
				headers[k] = base64.StdEncoding.EncodeToString(x)
			default:
				headers[k] = fmt.Sprint(v)
			}
		}
		if m.ContentType != nil {
			headers["content-type"] = *m.ContentType
		}
	}
	e := driver.NewUndecodableEvent(messageID(m, path), entitySource(path).String(), m.Body, headers)
	return &e
}

// withDeadLetterProperties sets the dead-letter extensions that DeadLetter
// wrote as application properties on e (the placeholder of a dead letter
// that is not a CloudEvent).
func withDeadLetterProperties(e *driver.Event, m *azservicebus.ReceivedMessage) {
	for k, v := range m.ApplicationProperties {
		name, ok := cewire.AMQPAttributeName(k)
		if !ok {
			continue
		}
		switch name {
		case driver.ExtDeadLetterReason, driver.ExtDeadLetterAttempts, driver.ExtDeadLetterTopic,
			driver.ExtDeadLetterSubscription, driver.ExtDeadLetterTime:
			if ev, err := extensionValue(v); err == nil {
				e.SetExtension(name, ev)
			}
		}
	}
}

// foreignEvent applies the documented rule to a message that is not a
// CloudEvent; it never fails.
func foreignEvent(m *azservicebus.ReceivedMessage, path string) (*driver.Event, error) {
	ctx := &event.EventContextV1{ID: messageID(m, path), Type: ForeignEventType}
	ctx.Source = types.URIRef{URL: *entitySource(path)}
	if m.EnqueuedTime != nil {
		ctx.Time = &types.Timestamp{Time: m.EnqueuedTime.UTC()}
	}
	if m.Subject != nil && strings.TrimSpace(*m.Subject) != "" {
		s := *m.Subject
		ctx.Subject = &s
	}
	if m.ContentType != nil && *m.ContentType != "" {
		ct := *m.ContentType
		ctx.DataContentType = &ct
	}
	for k, v := range m.ApplicationProperties {
		if !cewire.ValidExtensionName(k) {
			continue
		}
		if ev, err := extensionValue(v); err == nil {
			_ = ctx.SetExtension(k, ev) // context attribute names are refused: fine
		}
	}
	if m.SessionID != nil && *m.SessionID != "" {
		_ = ctx.SetExtension(crossbus.ExtPartitionKey, *m.SessionID)
	}
	e := event.Event{Context: ctx}
	setBody(&e, m.Body, ctx.DataContentType)
	if ctx.DataContentType != nil && crossbus.Validate(&e) != nil {
		ctx.DataContentType = nil // not a media type: keep the event valid, the data as is
		e.DataBase64 = len(e.DataEncoded) > 0
	}
	return &e, nil
}
