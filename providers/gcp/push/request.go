package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// Kind says what shape a pushed request had.
type Kind int

const (
	// KindBinary: a CloudEvent over HTTP in binary mode (Eventarc).
	KindBinary Kind = iota
	// KindStructured: a CloudEvent over HTTP in structured mode.
	KindStructured
	// KindPubSubPush: a Pub/Sub push envelope.
	KindPubSubPush
)

// String names the kind.
func (k Kind) String() string {
	return [...]string{"binary", "structured", "pubsub-push"}[k]
}

// Request is a decoded push request.
type Request struct {
	Event crossbus.Event
	// Attempt is the platform's delivery attempt (Pub/Sub push with a
	// dead-letter policy), or 0 when the platform did not say.
	Attempt int
	Kind    Kind
	// Subscription is the push subscription's resource name (push
	// envelopes only).
	Subscription string
	// Unwrapped reports that Event was the Pub/Sub message inside an
	// Eventarc messagePublished event.
	Unwrapped bool
	// DecodeError is set for the message of a push envelope that claims to
	// be a CloudEvent but is not a valid one: Event is then its placeholder
	// (pubsubwire.UndecodableEvent), and the Handler delivers it as
	// undecodable, so the portable layer dead-letters it.
	DecodeError error
}

// RequestError is a request the Handler cannot accept; Status is the HTTP
// status it answers with.
type RequestError struct {
	Status int
	Err    error
}

// Error returns the cause's message.
func (e *RequestError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Err: fmt.Errorf("push: "+format, args...)}
}

// envelope is a Pub/Sub push request body.
type envelope struct {
	Message         *pubsubwire.PublishedMessage `json:"message"`
	Subscription    string                       `json:"subscription"`
	DeliveryAttempt *int                         `json:"deliveryAttempt"`
}

// DecodeRequest reads a pushed request: a CloudEvent in binary or structured
// mode, or a Pub/Sub push envelope. topic is the resource name of the topic
// behind a push subscription, used as the source of plain messages (the
// envelope does not name it; "" uses the subscription). An Eventarc
// messagePublished event whose message is itself a CloudEvent is unwrapped.
// Errors are *RequestError, for requests that are not accepted at all; the
// message of a valid push envelope that claims to be a CloudEvent and is not
// one is accepted with Request.DecodeError set.
func DecodeRequest(h http.Header, body []byte, topic string) (Request, error) {
	ct := h.Get("Content-Type")
	mt := mediaType(ct)
	var req Request
	switch {
	case strings.HasPrefix(mt, "application/cloudevents-batch"):
		return req, &RequestError{Status: http.StatusUnsupportedMediaType, Err: errors.New("push: CloudEvents batches are not accepted; send one event per request")}
	case strings.HasPrefix(mt, "application/cloudevents"):
		if mt != "application/cloudevents+json" {
			return req, &RequestError{Status: http.StatusUnsupportedMediaType, Err: fmt.Errorf("push: structured event format %q is not supported (only application/cloudevents+json)", mt)}
		}
		req.Kind = KindStructured
		if err := json.Unmarshal(body, &req.Event); err != nil {
			return req, badRequest("structured CloudEvent is not valid JSON: %v", err)
		}
	case h.Get("Ce-Specversion") != "":
		req.Kind = KindBinary
		e, err := binding.ToEvent(context.Background(), cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body))))
		if err != nil {
			return req, badRequest("binary CloudEvent: %v", err)
		}
		req.Event = *e
	default:
		env, err := decodeEnvelope(body)
		if err != nil {
			return req, err
		}
		req.Kind, req.Subscription = KindPubSubPush, env.Subscription
		if env.DeliveryAttempt != nil {
			req.Attempt = *env.DeliveryAttempt
		}
		m := env.Message.ToMessage()
		req.Event, _, req.DecodeError = pubsubwire.Decode(&m, pubsubwire.Origin{Topic: topic, Subscription: env.Subscription})
	}
	if req.Event.Context == nil || req.Event.SpecVersion() != event.CloudEventsVersionV1 {
		return req, badRequest("CloudEvents specversion %q is not supported (want 1.0)", req.Event.SpecVersion())
	}
	if err := crossbus.Validate(&req.Event); err != nil {
		return req, badRequest("%v", err)
	}
	if req.Kind != KindPubSubPush && req.Event.Type() == pubsubwire.MessagePublishedType {
		unwrap(&req)
	}
	return req, nil
}

// decodeEnvelope parses a Pub/Sub push envelope.
func decodeEnvelope(body []byte) (envelope, error) {
	var env envelope
	if len(bytes.TrimSpace(body)) == 0 {
		return env, badRequest("empty body: neither a CloudEvent (no ce-specversion header, no application/cloudevents+json body) nor a Pub/Sub push envelope")
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return env, badRequest("body is neither a CloudEvent nor a Pub/Sub push envelope: %v", err)
	}
	if env.Message == nil {
		return env, badRequest(`Pub/Sub push envelope has no "message"`)
	}
	if env.DeliveryAttempt != nil && *env.DeliveryAttempt < 0 {
		return env, badRequest("Pub/Sub push envelope has a negative deliveryAttempt %d", *env.DeliveryAttempt)
	}
	return env, nil
}

// unwrap replaces an Eventarc messagePublished event by the CloudEvent its
// Pub/Sub message carries, when it carries one.
func unwrap(req *Request) {
	d, err := crossbus.DataAs[pubsubwire.MessagePublishedData](&req.Event)
	if err != nil {
		return
	}
	m := d.Message.ToMessage()
	inner, _, err := pubsubwire.DecodeCloudEvent(&m)
	if err != nil {
		return
	}
	req.Event, req.Unwrapped = inner, true
	if req.Subscription == "" {
		req.Subscription = d.Subscription
	}
}

func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}
