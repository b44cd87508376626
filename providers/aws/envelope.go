package aws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// Notification is an SNS notification: the envelope SNS puts in an SQS
// message when raw delivery is off, and the record Lambda receives.
type Notification struct {
	MessageID  string
	TopicARN   string
	Subject    string
	Message    string
	Timestamp  time.Time
	Attributes map[string]Attribute
}

// DecodeNotification turns an SNS notification into an event. The message
// and its attributes are decoded by the rules of DecodeMessage (a CloudEvent
// in structured or binary mode, or an EventBridge envelope); any other
// message becomes an event with id = MessageId, source = the topic ARN,
// type = "aws.sns.notification", subject = the notification's Subject,
// time = Timestamp and the message as data. It fails, as DecodeMessage
// does, only for a message that claims to be a CloudEvent and is not a
// valid one (ErrMalformedCloudEvent).
func DecodeNotification(n Notification) (*driver.Event, error) {
	return decodeNotification(n, 0)
}

func decodeNotification(n Notification, depth int) (*driver.Event, error) {
	return decodeBody(n.Message, n.Attributes, func() *driver.Event {
		return nativeEvent(nativeFields{id: n.MessageID, source: n.TopicARN, fallbackSource: "aws.sns", typ: TypeSNSNotification,
			subject: n.Subject, time: n.Timestamp, body: n.Message, contentType: attr(n.Attributes, AttrContentType)})
	}, depth)
}

// eventBridgeEnvelope is the JSON form of an EventBridge event.
type eventBridgeEnvelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// DecodeEventBridge turns an EventBridge event (the envelope a rule
// delivers to SQS, SNS or Lambda) into an event.
//
// An event crossbus published carries the whole CloudEvent as its detail,
// which is returned as it was published. Any other event (an AWS service
// event such as S3's "Object Created", or one another producer put) becomes
// a CloudEvent by this rule: id = the envelope id, source = the envelope
// source (e.g. "aws.s3"), type = the detail-type (e.g. "Object Created"),
// subject = the first resource, time = the envelope time, data = the detail
// as application/json, and the extensions awsaccount and awsregion. So a
// route filter reads like the EventBridge pattern it mirrors:
// {"source": ["aws.s3"], "type": ["Object Created"]}.
//
// It fails when doc is not an EventBridge envelope, and when its detail
// claims to be a CloudEvent (it has a specversion member) but is not a
// valid one: that error matches ErrMalformedCloudEvent.
func DecodeEventBridge(doc []byte) (*driver.Event, error) {
	return decodeEventBridge(doc, 0)
}

func decodeEventBridge(doc []byte, _ int) (*driver.Event, error) {
	var env eventBridgeEnvelope
	if err := json.Unmarshal(doc, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotEnvelope, err)
	}
	detail := bytes.TrimSpace(env.Detail)
	if env.ID == "" || env.Source == "" || len(detail) == 0 || detail[0] != '{' {
		return nil, errNotEnvelope
	}
	var probe struct {
		SpecVersion json.RawMessage `json:"specversion"`
	}
	if json.Unmarshal(detail, &probe) == nil && probe.SpecVersion != nil {
		ev, err := decodeStructured(detail)
		if err != nil {
			return nil, malformed(err)
		}
		return ev, nil
	}
	t, _ := time.Parse(time.RFC3339, env.Time)
	typ := env.DetailType
	if typ == "" {
		typ = "aws.eventbridge.event"
	}
	f := nativeFields{id: env.ID, source: env.Source, fallbackSource: "aws.events", typ: typ, time: t,
		body: string(detail), contentType: "application/json",
		extensions: map[string]string{ExtAccount: env.Account, ExtRegion: env.Region}}
	if len(env.Resources) > 0 {
		f.subject = env.Resources[0]
	}
	return nativeEvent(f), nil
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
