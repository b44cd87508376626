package driver

import (
	"encoding/json"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// Undecodable is implemented by deliveries of messages that are not
// CloudEvents, or are malformed ones. When DecodeError returns an error, the
// delivery's Event is a placeholder built with NewUndecodableEvent that
// carries the raw message, and the portable layer dead-letters the delivery
// at once (natively, or to the route's dead-letter topic) with a reason that
// names the decode error, without running filters or the handler. Providers
// never dead-letter such messages themselves.
//
// Providers whose documented mapping turns every foreign message into an
// event (Pub/Sub messages without CloudEvents attributes become
// google.cloud.pubsub.topic.v1.messagePublished events; SQS and SNS native
// messages become their AWS event types) have no undecodable messages.
type Undecodable interface {
	DecodeError() error
}

// TypeUndecodable is the type of the placeholder event an Undecodable
// delivery carries; ExtRawHeaders holds the message's headers (or
// attributes, or application properties) as a JSON object of strings.
const (
	TypeUndecodable = "dev.crossbus.undecodable"
	ExtRawHeaders   = "rawheaders"
	// MaxRawHeaders bounds the rawheaders extension; larger header sets
	// are left out.
	MaxRawHeaders = 8 << 10
)

// NewUndecodableEvent returns the placeholder event of a message that is not
// a CloudEvent: id and source identify the message in its system (for
// example a stream and sequence number), data is the raw payload as
// application/octet-stream, and headers, when given, are kept as JSON in the
// rawheaders extension (up to MaxRawHeaders bytes).
func NewUndecodableEvent(id, source string, payload []byte, headers map[string]string) Event {
	e := event.New(event.CloudEventsVersionV1)
	if id == "" {
		id = uuid.NewString()
	}
	e.SetID(id)
	e.SetTime(time.Now().UTC())
	e.SetType(TypeUndecodable)
	e.SetSource(source)
	e.SetDataContentType("application/octet-stream")
	e.DataEncoded = payload
	e.DataBase64 = true
	if len(headers) > 0 {
		if b, err := json.Marshal(headers); err == nil && len(b) <= MaxRawHeaders {
			e.SetExtension(ExtRawHeaders, string(b))
		}
	}
	return e
}
