package eventgrid

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Push is a decoded Event Grid push request.
type Push struct {
	// Events to dispatch, in delivery order. An event of a batch that does
	// not decode is its UndecodableEvent placeholder, with the reason at the
	// same index of DecodeErrors.
	Events []*driver.Event
	// DecodeErrors is nil when every event decoded; otherwise it has an
	// entry for each of Events, set for those that did not decode.
	DecodeErrors []error
	// ValidationCode is set for an Event Grid schema subscription
	// validation; the response must echo it.
	ValidationCode string
	// Ignored counts subscription lifecycle events (SubscriptionDeletedEvent)
	// that are acknowledged without dispatch.
	Ignored int
}

// DecodePush decodes the body of a push request in any form Event Grid (or
// another CloudEvents sender) delivers:
//
//   - application/cloudevents+json: one CloudEvent, structured mode;
//   - application/cloudevents-batch+json: a JSON array of CloudEvents;
//   - ce-specversion header: one CloudEvent, binary mode (the CloudEvents
//     HTTP binding; the CloudEvents SDK client's default);
//   - application/json (or no content type): a JSON array of Event Grid
//     schema events, or a single event or array in either schema, told apart
//     by their members.
//
// An Event Grid SubscriptionValidationEvent yields ValidationCode and no
// events. A body that is not one of these forms, or a single event that
// does not decode, refuses the whole push: Event Grid answers 400 by
// dead-lettering, which is what a payload that will never decode deserves.
// In a batch (a JSON array), an element that is a JSON object but not a
// valid event does not sink the others: it is kept as its UndecodableEvent
// placeholder with the reason in DecodeErrors, for the portable layer to
// dead-letter.
func DecodePush(header http.Header, body []byte) (Push, error) {
	ct := header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/cloudevents+json":
		ev, err := DecodeCloudEvent(body)
		if err != nil {
			return Push{}, err
		}
		return Push{Events: []*driver.Event{ev}}, nil
	case mt == "application/cloudevents-batch+json":
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			return Push{}, fmt.Errorf("eventgrid: %s body is not a JSON array: %w", mt, err)
		}
		return decodeAll(raws, DecodeCloudEvent)
	case header.Get("ce-specversion") != "":
		return decodeBinary(header, body)
	case mt == "" || mt == "application/json" || mt == "text/json":
		return decodeJSON(body)
	}
	return Push{}, fmt.Errorf("eventgrid: unsupported content type %q for an Event Grid push", ct)
}

func decodeBinary(header http.Header, body []byte) (Push, error) {
	msg := cehttp.NewMessage(header, io.NopCloser(bytes.NewReader(body)))
	ev, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return Push{}, fmt.Errorf("eventgrid: decode binary-mode CloudEvent: %w", err)
	}
	if err := crossbus.Validate(ev); err != nil {
		return Push{}, fmt.Errorf("eventgrid: decode binary-mode CloudEvent: %w", err)
	}
	normalizeTime(ev)
	return Push{Events: []*driver.Event{ev}}, nil
}

func decodeJSON(body []byte) (Push, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Push{}, fmt.Errorf("eventgrid: empty push body")
	}
	if !utf8.Valid(body) {
		return Push{}, errNotUTF8
	}
	raws := []json.RawMessage{body}
	batch := body[0] == '['
	if batch {
		raws = nil
		if err := json.Unmarshal(body, &raws); err != nil {
			return Push{}, fmt.Errorf("eventgrid: push body is not a JSON array of events: %w", err)
		}
	}
	var p Push
	for i, raw := range raws {
		var g eventGridEvent
		if err := json.Unmarshal(raw, &g); err != nil {
			if batch && isObject(raw) {
				p.addUndecodable(raw, eventError(i, err))
				continue
			}
			return Push{}, eventError(i, err)
		}
		if g.SpecVersion == "" {
			switch g.EventType {
			case SubscriptionValidationEventType:
				var d struct {
					ValidationCode string `json:"validationCode"`
				}
				if err := json.Unmarshal(g.Data, &d); err != nil || d.ValidationCode == "" {
					return Push{}, fmt.Errorf("eventgrid: event %d: subscription validation event without data.validationCode", i)
				}
				p.ValidationCode = d.ValidationCode
				continue
			case SubscriptionDeletedEventType:
				p.Ignored++
				continue
			}
		}
		ev, err := g.decode(raw)
		if err != nil {
			if batch {
				p.addUndecodable(raw, eventError(i, err))
				continue
			}
			return Push{}, eventError(i, err)
		}
		p.add(ev)
	}
	if p.ValidationCode != "" && len(p.Events) > 0 {
		return Push{}, fmt.Errorf("eventgrid: a subscription validation event arrived together with %d other events", len(p.Events))
	}
	return p, nil
}

// decodeAll decodes the elements of a CloudEvents batch; an element that is
// a JSON object but not a valid event is kept undecodable, anything else
// refuses the batch.
func decodeAll(raws []json.RawMessage, decode func([]byte) (*driver.Event, error)) (Push, error) {
	p := Push{Events: make([]*driver.Event, 0, len(raws))}
	for i, raw := range raws {
		ev, err := decode(raw)
		switch {
		case err == nil:
			p.add(ev)
		case isObject(raw):
			p.addUndecodable(raw, eventError(i, err))
		default:
			return Push{}, eventError(i, err)
		}
	}
	return p, nil
}

func (p *Push) add(ev *driver.Event) {
	p.Events = append(p.Events, ev)
	if p.DecodeErrors != nil {
		p.DecodeErrors = append(p.DecodeErrors, nil)
	}
}

func (p *Push) addUndecodable(raw []byte, err error) {
	if p.DecodeErrors == nil {
		p.DecodeErrors = make([]error, len(p.Events), cap(p.Events))
	}
	p.Events = append(p.Events, UndecodableEvent(raw, "/eventgrid"))
	p.DecodeErrors = append(p.DecodeErrors, err)
}

// isObject reports whether raw is a JSON object (an event, however broken)
// rather than some other JSON value.
func isObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}

// eventError is the failure of the i-th event of a push. Its message starts
// with "eventgrid: " once, also when err's own message does.
func eventError(i int, err error) error {
	return &indexedError{i: i, err: err}
}

type indexedError struct {
	i   int
	err error
}

func (e *indexedError) Error() string {
	return fmt.Sprintf("eventgrid: event %d: %s", e.i, strings.TrimPrefix(e.err.Error(), "eventgrid: "))
}

func (e *indexedError) Unwrap() error { return e.err }
