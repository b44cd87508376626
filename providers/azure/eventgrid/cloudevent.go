package eventgrid

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Event Grid speaks CloudEvents 1.0 in the JSON event format natively, so an
// event goes on the wire as itself: every context attribute and extension is
// a member of the JSON object. How data travels depends on its content type,
// chosen so that the CloudEvents SDKs (Go's included) read it back as sent:
//
//   - application/json, text/json, and no content type when the data is
//     valid JSON: "data" holds the JSON value itself;
//   - other textual content types (text/*, XML) holding valid UTF-8: "data"
//     holds a JSON string;
//   - everything else, including +json media types (which the Go SDK does
//     not parse as JSON values) and data set as binary: "data_base64".
//
// Extensions keep their CloudEvents type: Integer as a JSON number, Boolean as
// a JSON boolean, everything else in its canonical string form. On receive the
// JSON event format is decoded by the CloudEvents SDK, so events published by
// other CloudEvents producers read back exactly as those producers wrote them;
// a +json event whose data is a JSON value is accepted too.

// toAzure converts an event for the Azure SDK clients and returns the size of
// its JSON form, which is what Event Grid counts against its limits.
func toAzure(e *driver.Event) (messaging.CloudEvent, int, error) {
	ce := messaging.CloudEvent{
		ID:          e.ID(),
		Source:      e.Source(),
		SpecVersion: event.CloudEventsVersionV1,
		Type:        e.Type(),
	}
	ctx := e.Context.AsV1()
	if ctx.Subject != nil {
		s := *ctx.Subject
		ce.Subject = &s
	}
	if ctx.DataContentType != nil {
		s := *ctx.DataContentType
		ce.DataContentType = &s
	}
	if ctx.DataSchema != nil {
		s := ctx.DataSchema.String()
		ce.DataSchema = &s
	}
	if ctx.Time != nil && !ctx.Time.IsZero() {
		t := ctx.Time.Time.UTC()
		ce.Time = &t
	}
	if len(ctx.Extensions) > 0 {
		ce.Extensions = make(map[string]any, len(ctx.Extensions))
		for k, v := range ctx.Extensions {
			jv, err := extensionJSON(v)
			if err != nil {
				return ce, 0, fmt.Errorf("extension %q: %w", k, err)
			}
			ce.Extensions[k] = jv
		}
	}
	ce.Data = dataJSON(e)
	b, err := json.Marshal(ce)
	if err != nil {
		return ce, 0, fmt.Errorf("encode event %q as JSON: %w", e.ID(), err)
	}
	return ce, len(b), nil
}

// dataJSON chooses how the Azure SDK writes the data: json.RawMessage becomes
// "data" as is, a string becomes a "data" string, []byte becomes
// "data_base64".
func dataJSON(e *driver.Event) any {
	d := e.DataEncoded
	if d == nil {
		return nil
	}
	ct := e.DataContentType()
	if e.DataBase64 {
		return []byte(d)
	}
	switch {
	case ct == "" || isPlainJSON(ct):
		if json.Valid(d) && utf8.Valid(d) {
			return json.RawMessage(d)
		}
	case isTextType(ct):
		if utf8.Valid(d) {
			return string(d)
		}
	}
	return []byte(d)
}

// extensionJSON returns an extension value as the JSON event format writes it.
func extensionJSON(v any) (any, error) {
	v, err := types.Validate(v)
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case int32, bool, string:
		return x, nil
	default:
		return types.Format(x)
	}
}

func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// isPlainJSON reports the media types the CloudEvents Go SDK reads as a
// JSON value in "data".
func isPlainJSON(ct string) bool {
	mt := mediaType(ct)
	return mt == "application/json" || mt == "text/json"
}

func isTextType(ct string) bool {
	mt := mediaType(ct)
	return strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+xml") || mt == "application/xml"
}

// DecodeCloudEvent decodes one CloudEvent in the JSON event format (the form
// Event Grid stores, delivers and returns from a receive). It accepts events
// written by any CloudEvents producer and reports which attribute is wrong.
func DecodeCloudEvent(raw []byte) (*driver.Event, error) {
	if !utf8.Valid(raw) {
		return nil, errNotUTF8
	}
	e := event.New()
	err := unmarshalEvent(raw, &e)
	if err != nil {
		if fixed, ok := structuredJSONData(raw); ok && unmarshalEvent(fixed, &e) == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("eventgrid: decode CloudEvent: %w", err)
	}
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("eventgrid: decode CloudEvent: specversion %q is not %q", e.SpecVersion(), event.CloudEventsVersionV1)
	}
	if err := crossbus.Validate(&e); err != nil {
		return nil, fmt.Errorf("eventgrid: decode CloudEvent: %w", err)
	}
	normalizeTime(&e)
	return &e, nil
}

// unmarshalEvent runs the CloudEvents SDK's JSON decoder, which panics on
// some malformed input (a data_base64 that is not a string): foreign input
// must not crash a webhook.
func unmarshalEvent(raw []byte, e *event.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("malformed CloudEvent JSON: %v", v)
		}
	}()
	return json.Unmarshal(raw, e)
}

// errNotUTF8 refuses JSON that is not UTF-8 (RFC 8259 requires it; Event
// Grid refuses it too).
var errNotUTF8 = errors.New("eventgrid: decode event: JSON is not valid UTF-8")

// structuredJSONData rewrites an event whose datacontenttype has a +json
// suffix and whose data is a JSON value (valid CloudEvents JSON the Go SDK
// does not read) to carry the same bytes in data_base64.
func structuredJSONData(raw []byte) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	var ct string
	data, ok := m["data"]
	if !ok || json.Unmarshal(m["datacontenttype"], &ct) != nil || !strings.HasSuffix(mediaType(ct), "+json") {
		return nil, false
	}
	delete(m, "data")
	m["data_base64"], _ = json.Marshal(base64.StdEncoding.EncodeToString(data))
	b, err := json.Marshal(m)
	return b, err == nil
}

// normalizeTime keeps times in UTC, as crossbus writes them.
func normalizeTime(e *driver.Event) {
	if t := e.Time(); !t.IsZero() {
		e.SetTime(t.UTC())
	}
}

// eventTime parses an RFC 3339 timestamp as Event Grid writes it (up to seven
// fractional digits).
func eventTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}
