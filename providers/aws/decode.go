package aws

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Types and extensions of events made from messages that are not
// CloudEvents (see DecodeMessage).
const (
	// TypeSQSMessage is the type of an SQS message that is not a CloudEvent.
	TypeSQSMessage = "aws.sqs.message"
	// TypeSNSNotification is the type of an SNS notification whose message
	// is not a CloudEvent.
	TypeSNSNotification = "aws.sns.notification"
	// ExtAccount and ExtRegion carry the account and region of an
	// EventBridge event that is not a CloudEvent.
	ExtAccount = "awsaccount"
	ExtRegion  = "awsregion"
)

// ErrMalformedCloudEvent is matched (errors.Is) by the errors of
// DecodeMessage, DecodeNotification and DecodeEventBridge for a message that
// claims to be a CloudEvent (by its content-type or ce-specversion
// attribute, or a specversion member) but is not a valid one.
var ErrMalformedCloudEvent = errors.New("aws: message claims to be a CloudEvent but is not a valid one")

func malformed(err error) error { return fmt.Errorf("%w: %w", ErrMalformedCloudEvent, err) }

// sources caches the parsed sources of binary-mode messages.
var sources = cewire.NewSourceCache(1024)

// maxNesting bounds envelopes within envelopes (EventBridge to SNS to SQS).
const maxNesting = 4

// Message is an SQS message, as ReceiveMessage and Lambda's SQS events
// deliver it.
type Message struct {
	ID            string
	Body          string
	Attributes    map[string]Attribute // message attributes
	SentTimestamp time.Time            // zero when unknown
	SourceARN     string               // the queue's ARN ("" when unknown)
}

// Attribute is a message attribute value.
type Attribute struct {
	DataType    string // "String", "Number", "Binary", optionally with a ".label"
	StringValue string
	BinaryValue []byte
}

// DecodeMessage turns an SQS message into an event. The first rule that
// applies decides:
//
//  1. A content-type attribute of application/cloudevents+json: the body
//     is the event in structured JSON.
//  2. A ce-specversion attribute: binary mode; the ce- attributes are the
//     context attributes and extensions, content-type the datacontenttype
//     and the body the data.
//  3. A body that is an SNS notification envelope (non-raw delivery): the
//     notification is decoded as DecodeNotification does.
//  4. A body that is an EventBridge envelope (a rule's SQS target): the
//     envelope is decoded as DecodeEventBridge does.
//  5. A body that is a JSON object with a specversion field: structured.
//  6. Anything else is a native message: id = MessageId, source = the
//     queue's ARN ("aws.sqs" when unknown), type = "aws.sqs.message", time =
//     SentTimestamp, data = the body (application/json when it is JSON,
//     else text/plain, unless a content-type attribute says otherwise).
//
// It fails only when rule 1, 2 or 5 applies (here or inside an envelope) and
// the message is not a valid CloudEvent: the error matches
// ErrMalformedCloudEvent and says what is wrong. Such a message is not
// guessed at: the provider's receiver hands it to the portable layer as
// undecodable (driver.Undecodable), which dead-letters it without running
// the handler.
func DecodeMessage(m Message) (*driver.Event, error) {
	return decodeBody(m.Body, m.Attributes, func() *driver.Event { return nativeSQS(m) }, 0)
}

// UndecodableEvent is the placeholder event of an SQS message that
// DecodeMessage refused (see driver.NewUndecodableEvent): id = MessageId,
// source = the queue's ARN ("aws.sqs" when unknown), data = the body, and the
// message attributes (binary values in base64) in the rawheaders extension.
// When the body is an SNS notification envelope, the placeholder is the
// notification's (see UndecodableNotification), so that it carries the
// message as it was published.
func UndecodableEvent(m Message) *driver.Event {
	if n, ok := snsEnvelope(m.Body, m.Attributes); ok {
		return UndecodableNotification(n)
	}
	return undecodable(m.ID, m.SourceARN, "aws.sqs", m.Body, m.Attributes)
}

// UndecodableNotification is the placeholder event of an SNS notification
// that DecodeNotification refused: id = MessageId, source = the topic ARN
// ("aws.sns" when unknown), data = the message, and its attributes in the
// rawheaders extension (or, for an SNS envelope inside, that envelope's
// notification's).
func UndecodableNotification(n Notification) *driver.Event {
	for range maxNesting {
		inner, ok := snsEnvelope(n.Message, n.Attributes)
		if !ok {
			break
		}
		n = inner
	}
	return undecodable(n.MessageID, n.TopicARN, "aws.sns", n.Message, n.Attributes)
}

// snsEnvelope returns the notification a body holds when decodeBody reads
// it as an SNS envelope (rule 3).
func snsEnvelope(body string, attrs map[string]Attribute) (Notification, bool) {
	if ct := attr(attrs, AttrContentType); strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
		return Notification{}, false
	}
	if _, ok := attrs[AttrPrefix+"specversion"]; ok {
		return Notification{}, false
	}
	trimmed := bytes.TrimSpace([]byte(body))
	var probe envelopeProbe
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &probe) != nil || !probe.isSNS() {
		return Notification{}, false
	}
	return probe.notification(), true
}

func undecodable(id, source, fallbackSource, body string, attrs map[string]Attribute) *driver.Event {
	if u, err := url.Parse(source); source == "" || err != nil || u.String() == "" {
		source = fallbackSource
	}
	var headers map[string]string
	if len(attrs) > 0 {
		headers = make(map[string]string, len(attrs))
		for k, a := range attrs {
			v := a.StringValue
			if strings.HasPrefix(a.DataType, "Binary") {
				v = base64.StdEncoding.EncodeToString(a.BinaryValue)
			}
			headers[k] = v
		}
	}
	ev := driver.NewUndecodableEvent(strings.TrimSpace(id), source, []byte(body), headers)
	if crossbus.Validate(&ev) != nil { // only a source the SDK could not parse gets here
		ev.SetSource(fallbackSource)
		ev.FieldErrors = nil
	}
	return &ev
}

// decodeBody applies the rules of DecodeMessage; native builds the event
// of rule 6 for this layer of nesting.
func decodeBody(body string, attrs map[string]Attribute, native func() *driver.Event, depth int) (*driver.Event, error) {
	if ct := attr(attrs, AttrContentType); strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
		ev, err := decodeStructured([]byte(body))
		if err != nil {
			return nil, malformed(err)
		}
		return ev, nil
	}
	if _, ok := attrs[AttrPrefix+"specversion"]; ok {
		ev, err := decodeBinary(body, attrs)
		if err != nil {
			return nil, malformed(err)
		}
		return ev, nil
	}
	trimmed := bytes.TrimSpace([]byte(body))
	if depth < maxNesting && len(trimmed) > 0 && trimmed[0] == '{' {
		var probe envelopeProbe
		if json.Unmarshal(trimmed, &probe) == nil {
			switch {
			case probe.isSNS():
				return decodeNotification(probe.notification(), depth+1)
			case probe.isEventBridge():
				ev, err := decodeEventBridge(trimmed, depth+1)
				if err == nil || errors.Is(err, ErrMalformedCloudEvent) {
					return ev, err
				}
			case probe.SpecVersion != nil:
				ev, err := decodeStructured(trimmed)
				if err != nil {
					return nil, malformed(err)
				}
				return ev, nil
			}
		}
	}
	return native(), nil
}

func attr(attrs map[string]Attribute, name string) string {
	if a, ok := attrs[name]; ok {
		return a.StringValue
	}
	for k, a := range attrs {
		if strings.EqualFold(k, name) {
			return a.StringValue
		}
	}
	return ""
}

func decodeStructured(b []byte) (*driver.Event, error) {
	ev := event.New()
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("structured CloudEvent does not decode: %w", err)
	}
	if err := crossbus.Validate(&ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

func decodeBinary(body string, attrs map[string]Attribute) (*driver.Event, error) {
	if v := attrs[AttrPrefix+"specversion"].StringValue; v != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("binary CloudEvent has specversion %q, want %q", v, event.CloudEventsVersionV1)
	}
	ev := event.New()
	ctx := ev.Context.(*event.EventContextV1) // event.New makes a V1 context
	for name, a := range attrs {
		key, ok := strings.CutPrefix(name, AttrPrefix)
		if !ok || key == "specversion" {
			continue
		}
		if err := cewire.SetAttribute(ctx, strings.ToLower(key), a.StringValue, sources); err != nil {
			return nil, fmt.Errorf("binary CloudEvent attribute %s: %w", name, err)
		}
	}
	ct := attr(attrs, AttrContentType)
	if ct == "" && ctx.DataContentType != nil { // a ce-datacontenttype attribute instead
		ct = *ctx.DataContentType
	}
	if ct != "" {
		ev.SetDataContentType(ct)
	}
	if (ct == "" || jsonType(ct)) && !json.Valid([]byte(body)) {
		if ct != "" {
			return nil, fmt.Errorf("binary CloudEvent says its data is %s but the body is not JSON", ct)
		}
		ev.SetDataContentType("text/plain; charset=utf-8")
	}
	ev.DataEncoded = []byte(body)
	ev.DataBase64 = ct != "" && !textual(ct)
	if err := crossbus.Validate(&ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// validMediaType reports whether ct is "type/subtype" with valid
// parameters, as CloudEvents' datacontenttype must be.
func validMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	typ, sub, ok := strings.Cut(mt, "/")
	return err == nil && ok && typ != "" && sub != "" && !strings.Contains(sub, "/")
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

func jsonType(ct string) bool {
	mt := mediaType(ct)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func textual(ct string) bool {
	mt := mediaType(ct)
	return strings.HasPrefix(mt, "text/") || jsonType(ct) || strings.Contains(mt, "xml")
}

// envelopeProbe reads just enough of a JSON body to tell envelopes apart.
type envelopeProbe struct {
	// SNS
	Type              string
	MessageID         string `json:"MessageId"`
	TopicArn          string
	Subject           string
	Message           *string
	Timestamp         string
	MessageAttributes map[string]struct{ Type, Value string }
	// EventBridge
	DetailType *string          `json:"detail-type"`
	Source     json.RawMessage  `json:"source"`
	Detail     *json.RawMessage `json:"detail"`
	// CloudEvents
	SpecVersion json.RawMessage `json:"specversion"`
}

func (p *envelopeProbe) isSNS() bool {
	return p.Type == "Notification" && p.TopicArn != "" && p.Message != nil
}

func (p *envelopeProbe) isEventBridge() bool {
	return p.DetailType != nil && len(p.Source) > 0 && p.Detail != nil
}

func (p *envelopeProbe) notification() Notification {
	n := Notification{MessageID: p.MessageID, TopicARN: p.TopicArn, Subject: p.Subject, Message: *p.Message}
	n.Timestamp, _ = time.Parse(time.RFC3339Nano, p.Timestamp)
	for k, a := range p.MessageAttributes {
		if n.Attributes == nil {
			n.Attributes = map[string]Attribute{}
		}
		n.Attributes[k] = SNSAttribute(a.Type, a.Value)
	}
	return n
}

// SNSAttribute converts a message attribute as SNS notifications carry it
// ({"Type": ..., "Value": ...}, with Binary values as base64 text).
func SNSAttribute(typ, value string) Attribute {
	a := Attribute{DataType: typ, StringValue: value}
	if strings.HasPrefix(typ, "Binary") {
		a.StringValue = ""
		a.BinaryValue, _ = decodeBase64(value)
	}
	return a
}

func nativeSQS(m Message) *driver.Event {
	return nativeEvent(nativeFields{id: m.ID, source: m.SourceARN, fallbackSource: "aws.sqs", typ: TypeSQSMessage,
		time: m.SentTimestamp, body: m.Body, contentType: attr(m.Attributes, AttrContentType)})
}

type nativeFields struct {
	id, source, fallbackSource, typ, subject string
	time                                     time.Time
	body                                     string
	contentType                              string
	extensions                               map[string]string
}

// nativeEvent builds the event for a message that is not a CloudEvent,
// making sure it is a valid one whatever the message holds.
func nativeEvent(f nativeFields) *driver.Event {
	ev := event.New()
	id := strings.TrimSpace(f.id)
	if id == "" {
		sum := sha256.Sum256([]byte(f.body))
		id = "sha256-" + hex.EncodeToString(sum[:16])
	}
	ev.SetID(id)
	source := f.source
	if u, err := url.Parse(source); source == "" || err != nil || u.String() == "" {
		source = f.fallbackSource
	}
	ev.SetSource(source)
	ev.SetType(f.typ)
	if strings.TrimSpace(f.subject) != "" {
		ev.SetSubject(f.subject)
	}
	if !f.time.IsZero() {
		ev.SetTime(f.time)
	}
	ct := f.contentType
	if !validMediaType(ct) || strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") || jsonType(ct) && !json.Valid([]byte(f.body)) {
		ct = "text/plain; charset=utf-8"
		if json.Valid([]byte(f.body)) {
			ct = "application/json"
		}
	}
	ev.SetDataContentType(ct)
	ev.DataEncoded = []byte(f.body)
	ev.DataBase64 = !textual(ct)
	for k, v := range f.extensions {
		if v != "" {
			ev.SetExtension(k, v)
		}
	}
	ev.FieldErrors = nil
	if crossbus.Validate(&ev) != nil { // only a source the SDK could not parse gets here
		ev.SetSource(f.fallbackSource)
		ev.FieldErrors = nil
	}
	return &ev
}

var errNotEnvelope = errors.New("not an EventBridge event envelope (needs id, source, detail-type and a JSON object detail)")
