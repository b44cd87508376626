package eventgrid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Event types Event Grid sends to a webhook about the subscription itself.
const (
	SubscriptionValidationEventType = "Microsoft.EventGrid.SubscriptionValidationEvent"
	SubscriptionDeletedEventType    = "Microsoft.EventGrid.SubscriptionDeletedEvent"
)

// ExtDataVersion is the extension an Event Grid schema event's dataVersion
// becomes.
const ExtDataVersion = "dataversion"

// eventGridEvent is the Event Grid event schema.
type eventGridEvent struct {
	ID              string          `json:"id"`
	Topic           string          `json:"topic"`
	Subject         string          `json:"subject"`
	EventType       string          `json:"eventType"`
	EventTime       string          `json:"eventTime"`
	Data            json.RawMessage `json:"data"`
	DataVersion     string          `json:"dataVersion"`
	MetadataVersion string          `json:"metadataVersion"`

	// SpecVersion is set when the object is a CloudEvent after all.
	SpecVersion string `json:"specversion"`
}

// DecodeEventGridEvent maps one event in the Event Grid event schema (for
// example Microsoft.Storage.BlobCreated) to a CloudEvent by this rule, the
// one Event Grid itself applies when it delivers such events as CloudEvents:
//
//	id              <- id
//	source          <- topic (the publisher's Azure resource ID)
//	type            <- eventType
//	subject         <- subject (omitted when empty)
//	time            <- eventTime
//	data            <- data, with datacontenttype application/json
//	dataversion     <- dataVersion (extension; omitted when empty)
//
// metadataVersion is dropped: it versions the envelope, not the event. id,
// topic and eventType are required.
func DecodeEventGridEvent(raw []byte) (*driver.Event, error) {
	if !utf8.Valid(raw) {
		return nil, errNotUTF8
	}
	var g eventGridEvent
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("eventgrid: decode Event Grid event: %w", err)
	}
	return g.cloudEvent()
}

func (g *eventGridEvent) cloudEvent() (*driver.Event, error) {
	for _, f := range [...]struct{ name, v string }{{"id", g.ID}, {"topic", g.Topic}, {"eventType", g.EventType}} {
		if f.v == "" {
			return nil, fmt.Errorf("eventgrid: Event Grid event %q: %s is missing", g.ID, f.name)
		}
	}
	e := event.New()
	e.SetID(g.ID)
	e.SetSource(g.Topic)
	e.SetType(g.EventType)
	if g.Subject != "" {
		e.SetSubject(g.Subject)
	}
	if g.EventTime != "" {
		t, err := eventTime(g.EventTime)
		if err != nil {
			return nil, fmt.Errorf("eventgrid: Event Grid event %q: eventTime %q is not an RFC 3339 time", g.ID, g.EventTime)
		}
		e.SetTime(t.UTC())
	}
	if len(g.Data) > 0 && !bytes.Equal(bytes.TrimSpace(g.Data), []byte("null")) {
		e.SetDataContentType(event.ApplicationJSON)
		e.DataEncoded = append([]byte(nil), g.Data...)
	}
	if g.DataVersion != "" {
		e.SetExtension(ExtDataVersion, g.DataVersion)
	}
	if err := crossbus.Validate(&e); err != nil {
		return nil, fmt.Errorf("eventgrid: Event Grid event %q: %w", g.ID, err)
	}
	return &e, nil
}

// DecodeEvent decodes one JSON event in either schema: an object with
// "specversion" is a CloudEvent, one with "eventType" an Event Grid event.
func DecodeEvent(raw []byte) (*driver.Event, error) {
	if !utf8.Valid(raw) {
		return nil, errNotUTF8
	}
	var g eventGridEvent
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("eventgrid: decode event: %w", err)
	}
	return g.decode(raw)
}

// decode finishes DecodeEvent for an object already read into g.
func (g *eventGridEvent) decode(raw []byte) (*driver.Event, error) {
	switch {
	case g.SpecVersion != "":
		return DecodeCloudEvent(raw)
	case g.EventType != "":
		return g.cloudEvent()
	}
	return nil, fmt.Errorf("eventgrid: decode event: neither a CloudEvent (specversion) nor an Event Grid event (eventType)")
}
