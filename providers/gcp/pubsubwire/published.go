package pubsubwire

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// MessagePublishedType is the CloudEvents type Eventarc gives a message
// published to a Pub/Sub topic.
const MessagePublishedType = "google.cloud.pubsub.topic.v1.messagePublished"

// SourcePrefix starts the source of Google Cloud events about Pub/Sub
// resources: "//pubsub.googleapis.com/projects/P/topics/T".
const SourcePrefix = "//pubsub.googleapis.com/"

// MessagePublishedData is the data of a messagePublished event, as Eventarc
// sends it (google.events.cloud.pubsub.v1.MessagePublishedData). Decode it in
// a handler with crossbus.DataAs[pubsubwire.MessagePublishedData].
type MessagePublishedData struct {
	Message PublishedMessage `json:"message"`
	// Subscription is "projects/P/subscriptions/S".
	Subscription string `json:"subscription,omitempty"`
}

// PublishedMessage is the Pub/Sub message inside MessagePublishedData and
// inside Pub/Sub push envelopes. Its JSON form carries both the camel-case
// field names and the snake-case ones (messageId and message_id, publishTime
// and publish_time), as Pub/Sub push and Eventarc send them; either is read.
type PublishedMessage struct {
	Data        []byte
	Attributes  map[string]string
	MessageID   string
	PublishTime time.Time
	OrderingKey string
}

type publishedMessageJSON struct {
	Data         string            `json:"data,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	MessageID    string            `json:"messageId,omitempty"`
	MessageIDAlt string            `json:"message_id,omitempty"`
	Publish      string            `json:"publishTime,omitempty"`
	PublishAlt   string            `json:"publish_time,omitempty"`
	OrderingKey  string            `json:"orderingKey,omitempty"`
	OrderingAlt  string            `json:"ordering_key,omitempty"`
}

// MarshalJSON writes the message in the shape Pub/Sub push uses.
func (p PublishedMessage) MarshalJSON() ([]byte, error) {
	j := publishedMessageJSON{Attributes: p.Attributes, MessageID: p.MessageID, MessageIDAlt: p.MessageID, OrderingKey: p.OrderingKey}
	if len(p.Data) > 0 {
		j.Data = base64.StdEncoding.EncodeToString(p.Data)
	}
	if !p.PublishTime.IsZero() {
		j.Publish = p.PublishTime.UTC().Format(time.RFC3339Nano)
		j.PublishAlt = j.Publish
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads either field spelling. data must be base64 (standard
// or URL alphabet, padded or not); publishTime must be RFC 3339.
func (p *PublishedMessage) UnmarshalJSON(b []byte) error {
	var j publishedMessageJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	data, err := decodeBase64(j.Data)
	if err != nil {
		return fmt.Errorf("message.data is not base64: %w", err)
	}
	*p = PublishedMessage{Data: data, Attributes: j.Attributes, MessageID: firstNonEmpty(j.MessageID, j.MessageIDAlt),
		OrderingKey: firstNonEmpty(j.OrderingKey, j.OrderingAlt)}
	if ts := firstNonEmpty(j.Publish, j.PublishAlt); ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return fmt.Errorf("message.publishTime %q is not an RFC 3339 time", ts)
		}
		p.PublishTime = t
	}
	return nil
}

// ToMessage returns the message in the form Decode reads.
func (p *PublishedMessage) ToMessage() Message {
	return Message{Data: p.Data, Attributes: p.Attributes, OrderingKey: p.OrderingKey, ID: p.MessageID, PublishTime: p.PublishTime}
}

func decodeBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return nil, err
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// MessagePublishedEvent wraps a plain message as Eventarc does: type
// MessagePublishedType, source SourcePrefix + the topic's resource name (the
// subscription's when the topic is unknown), id the message id, time the
// publish time, and MessagePublishedData as JSON data.
func MessagePublishedEvent(m *Message, o Origin) event.Event {
	e := event.New(event.CloudEventsVersionV1)
	id := m.ID
	if id == "" {
		id = contentID(m)
	}
	e.SetID(id)
	e.SetType(MessagePublishedType)
	switch {
	case o.Topic != "":
		e.SetSource(SourcePrefix + o.Topic)
	case o.Subscription != "":
		e.SetSource(SourcePrefix + o.Subscription)
	default:
		e.SetSource(SourcePrefix)
	}
	if !m.PublishTime.IsZero() {
		e.SetTime(m.PublishTime.UTC())
	}
	d := MessagePublishedData{Subscription: o.Subscription, Message: PublishedMessage{Data: m.Data, Attributes: m.Attributes,
		MessageID: m.ID, PublishTime: m.PublishTime, OrderingKey: m.OrderingKey}}
	body, err := json.Marshal(d)
	if err != nil { // cannot happen: strings, bytes and a time
		body = []byte(`{}`)
	}
	e.SetDataContentType(event.ApplicationJSON)
	e.DataEncoded = body
	return e
}

// contentID derives a stable id for a message without one (only messages
// built by hand lack the server-assigned id).
func contentID(m *Message) string {
	h := sha256.New()
	h.Write(m.Data)
	keys := make([]string, 0, len(m.Attributes))
	for k := range m.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s\x00%s", k, m.Attributes[k])
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// TopicName returns the resource name of topic in project, leaving names
// that are already resource names ("projects/P/topics/T") as they are.
func TopicName(project, topic string) string {
	if strings.HasPrefix(topic, "projects/") {
		return topic
	}
	return "projects/" + project + "/topics/" + topic
}

// SubscriptionName returns the resource name of subscription in project,
// leaving resource names as they are.
func SubscriptionName(project, subscription string) string {
	if strings.HasPrefix(subscription, "projects/") {
		return subscription
	}
	return "projects/" + project + "/subscriptions/" + subscription
}
