package pubsubwire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Attributes Pub/Sub adds to a message it forwards to a dead-letter topic.
const (
	attrDLDeliveryCount = "CloudPubSubDeadLetterSourceDeliveryCount"
	attrDLSubscription  = "CloudPubSubDeadLetterSourceSubscription"
	attrDLProject       = "CloudPubSubDeadLetterSourceSubscriptionProject"
)

// ErrNotCloudEvent is returned by DecodeCloudEvent for a plain Pub/Sub
// message that carries neither a structured content type nor ce-specversion.
var ErrNotCloudEvent = errors.New("pubsubwire: message is not a CloudEvent")

// Format says how Decode read a message.
type Format int

const (
	// FormatBinary: a binary-mode CloudEvent.
	FormatBinary Format = iota
	// FormatStructured: a structured-mode CloudEvent.
	FormatStructured
	// FormatPlain: a plain message, wrapped as a messagePublished event.
	FormatPlain
	// FormatInvalid: a message claiming to be a CloudEvent that is not a
	// valid one; Decode returns the UndecodableEvent placeholder and why.
	FormatInvalid
)

// String names the format.
func (f Format) String() string {
	switch f {
	case FormatBinary:
		return "binary"
	case FormatStructured:
		return "structured"
	case FormatPlain:
		return "plain"
	}
	return "invalid"
}

// Origin says where a message was read from; Decode needs it only to build
// the messagePublished event of a plain message.
type Origin struct {
	// Topic is the topic's resource name, "projects/P/topics/T" ("" when
	// unknown, as for Pub/Sub push envelopes).
	Topic string
	// Subscription is the subscription's resource name,
	// "projects/P/subscriptions/S".
	Subscription string
}

// Decode reads a message as a CloudEvent. A plain message becomes a
// messagePublished event (FormatPlain). It fails only for a message that
// claims to be a CloudEvent but is not a valid one (FormatInvalid): the error
// says what is wrong, and the event is the message's UndecodableEvent
// placeholder, for a driver.Undecodable delivery.
func Decode(m *Message, o Origin) (event.Event, Format, error) {
	e, f, err := DecodeCloudEvent(m)
	if err == nil {
		return e, f, nil
	}
	if errors.Is(err, ErrNotCloudEvent) {
		return MessagePublishedEvent(m, o), FormatPlain, nil
	}
	return UndecodableEvent(m, o), FormatInvalid, err
}

// UndecodableEvent is the placeholder (driver.NewUndecodableEvent) of a
// message that claims to be a CloudEvent but is not one: id = the message
// id, source = //pubsub.googleapis.com/ and the topic (or subscription), data
// = the message data, and the attributes (with the ordering key as
// "orderingKey" when there is one) in the rawheaders extension.
func UndecodableEvent(m *Message, o Origin) event.Event {
	source := SourcePrefix + o.Topic
	if o.Topic == "" {
		source = SourcePrefix + o.Subscription
	}
	headers := m.Attributes
	if m.OrderingKey != "" {
		headers = make(map[string]string, len(m.Attributes)+1)
		for k, v := range m.Attributes {
			headers[k] = v
		}
		headers["orderingKey"] = m.OrderingKey
	}
	id := m.ID
	if id == "" {
		id = contentID(m)
	}
	e := driver.NewUndecodableEvent(id, source, m.Data, headers)
	if crossbus.Validate(&e) != nil { // a resource name that is not a URI reference
		e.SetSource(SourcePrefix)
		e.FieldErrors = nil
	}
	return e
}

// DecodeCloudEvent reads a message in binary or structured mode. It returns
// ErrNotCloudEvent for a plain message and a descriptive error for a message
// that is not a valid CloudEvent.
func DecodeCloudEvent(m *Message) (event.Event, Format, error) {
	ct, hasCT := contentType(m.Attributes)
	if hasCT && strings.HasPrefix(mediaType(ct), "application/cloudevents") {
		e, err := decodeStructured(m, ct)
		return e, FormatStructured, err
	}
	if _, ok := lookupFold(m.Attributes, AttrPrefix+"specversion"); ok {
		e, err := decodeBinary(m)
		return e, FormatBinary, err
	}
	return event.Event{}, FormatPlain, ErrNotCloudEvent
}

// lookupFold finds an attribute by name, ignoring letter case (an exact
// match is tried first, as it is what the binding writes).
func lookupFold(attrs map[string]string, name string) (string, bool) {
	if v, ok := attrs[name]; ok {
		return v, true
	}
	for k, v := range attrs {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func contentType(attrs map[string]string) (string, bool) {
	return lookupFold(attrs, AttrContentType)
}

func decodeStructured(m *Message, ct string) (event.Event, error) {
	var e event.Event
	if mt := mediaType(ct); mt != "application/cloudevents+json" {
		return e, fmt.Errorf("pubsubwire: structured message in event format %q; only application/cloudevents+json is supported", mt)
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return event.Event{}, fmt.Errorf("pubsubwire: structured message body is not a CloudEvent in JSON: %w", err)
	}
	if e.Context == nil || e.SpecVersion() != event.CloudEventsVersionV1 {
		return event.Event{}, fmt.Errorf("pubsubwire: structured message has specversion %q; only %q is supported", e.SpecVersion(), event.CloudEventsVersionV1)
	}
	addDeadLetterInfo(&e, m)
	if err := crossbus.Validate(&e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

func decodeBinary(m *Message) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	ctx := e.Context.(*event.EventContextV1) // event.New makes a V1 context
	var specversion, ceContentType string
	var ct *string
	var problems []string
	for k, v := range m.Attributes {
		if len(k) <= len(AttrPrefix) || !strings.EqualFold(k[:len(AttrPrefix)], AttrPrefix) {
			if strings.EqualFold(k, AttrContentType) {
				s := v
				ct = &s
			}
			continue
		}
		switch name := strings.ToLower(k[len(AttrPrefix):]); name {
		case "specversion":
			specversion = v
		case "datacontenttype":
			ceContentType = v
		default:
			if !cewire.IsContextAttribute(name) && !cewire.ValidExtensionName(name) {
				continue // not an attribute: ignored
			}
			if err := cewire.SetAttribute(ctx, name, v, sources); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", k, err))
			}
		}
	}
	if specversion != event.CloudEventsVersionV1 {
		return event.Event{}, fmt.Errorf("pubsubwire: ce-specversion %q is not supported (want %q)", specversion, event.CloudEventsVersionV1)
	}
	if problems != nil {
		return event.Event{}, fmt.Errorf("pubsubwire: %s", strings.Join(problems, "; "))
	}
	if ct == nil && ceContentType != "" {
		ct = &ceContentType
	}
	ctx.DataContentType = ct
	if len(m.Data) > 0 {
		e.DataEncoded = m.Data
		e.DataBase64 = ct != nil && !isTextual(*ct)
	}
	addDeadLetterInfo(&e, m)
	if err := crossbus.Validate(&e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// sources caches parsed sources: a subscription sees few distinct sources,
// and parsing a URI costs more than the rest of decoding an event.
var sources = cewire.NewSourceCache(1024)

// addDeadLetterInfo maps the attributes Pub/Sub adds when it forwards a
// message to a dead-letter topic onto the crossbus dead-letter extensions,
// unless the event already carries them (crossbus dead-lettered it itself).
func addDeadLetterInfo(e *event.Event, m *Message) {
	count, ok := m.Attributes[attrDLDeliveryCount]
	if !ok {
		return
	}
	if _, has := e.Extensions()[driver.ExtDeadLetterReason]; has {
		return
	}
	n, _ := strconv.Atoi(count)
	e.SetExtension(driver.ExtDeadLetterReason,
		fmt.Sprintf("Pub/Sub dead-letter policy: delivered %s times without acknowledgement", count))
	e.SetExtension(driver.ExtDeadLetterAttempts, int32(min(max(n, 0), 1<<31-1)))
	if sub := m.Attributes[attrDLSubscription]; sub != "" {
		if p := m.Attributes[attrDLProject]; p != "" && !strings.HasPrefix(sub, "projects/") {
			sub = "projects/" + p + "/subscriptions/" + sub
		}
		e.SetExtension(driver.ExtDeadLetterSubscription, sub)
	}
	if !m.PublishTime.IsZero() {
		e.SetExtension(driver.ExtDeadLetterTime, m.PublishTime.UTC().Format(time.RFC3339Nano))
	}
}
