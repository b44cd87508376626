package functions

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
)

// Invocation is one event of an invocation, with its attempt number.
type Invocation struct {
	Event   *crossbus.Event
	Attempt int
	// DecodeError is set for a message or event that claims to be a
	// CloudEvent and is not a valid one; Event is then its placeholder (see
	// driver.NewUndecodableEvent), delivered as undecodable so that the
	// portable layer dead-letters it.
	DecodeError error
}

// request is the body the Functions host posts.
type request struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// Decode decodes an invocation request body for function f into its events.
//
// The host serializes trigger values in more than one way: a JSON value as
// itself, a string as a JSON string that may hold the string's JSON encoding
// again (a known quirk of the host's HTTP worker), bytes as base64. Decode
// accepts each: with DataType "" a string whose content is itself a JSON
// string literal is unwrapped once more; "string" takes strings as they are;
// "binary" base64-decodes them. Metadata values are read the same tolerant
// way, so "DeliveryCount": 2 and "DeliveryCount": "2" both work.
func Decode(f *Function, body []byte) ([]Invocation, error) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("functions: %s: invocation is not {\"Data\":{...},\"Metadata\":{...}}: %w", f.Name, err)
	}
	raw, ok := lookup(req.Data, f.Binding)
	if !ok {
		return nil, fmt.Errorf("functions: %s: invocation has no Data.%s (the trigger binding's name)", f.Name, f.Binding)
	}
	meta := metadata(req.Metadata)
	if f.Trigger == EventGrid {
		in, err := eventGridTrigger(raw)
		if err != nil {
			return nil, fmt.Errorf("functions: %s: %w", f.Name, err)
		}
		in.Attempt = meta.retryAttempt()
		return []Invocation{in}, nil
	}
	if !f.Many {
		in, err := f.serviceBusMessage(raw, meta, -1, nil)
		if err != nil {
			return nil, err
		}
		return []Invocation{in}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(unwrapString(raw), &items); err != nil {
		return nil, fmt.Errorf("functions: %s: Data.%s is not an array of messages (cardinality many): %w", f.Name, f.Binding, err)
	}
	out := make([]Invocation, 0, len(items))
	seen := map[string]int{}
	for i, it := range items {
		in, err := f.serviceBusMessage(it, meta, i, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// lookup finds key, exactly or ignoring case.
func lookup(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// unwrapString returns the JSON text a value stands for: a JSON string's
// content when raw is a string (the host's string encoding), else raw.
func unwrapString(raw json.RawMessage) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return raw
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return raw
	}
	return []byte(s)
}

// bodyBytes turns a trigger value into the message body.
func bodyBytes(raw json.RawMessage, dataType string) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return raw, nil // a JSON body the host passed as JSON
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	switch dataType {
	case "binary":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("binary body is not base64: %w", err)
		}
		return b, nil
	case "string":
		return []byte(s), nil
	}
	if len(s) >= 2 && s[0] == '"' {
		var inner string
		if json.Unmarshal([]byte(s), &inner) == nil {
			return []byte(inner), nil
		}
	}
	return []byte(s), nil
}

// metadata reads trigger metadata tolerantly.
type metadata map[string]json.RawMessage

// get returns key, or for a batch (i >= 0) element i of key+"Array".
func (m metadata) get(key string, i int) json.RawMessage {
	if i < 0 {
		v, _ := lookup(m, key)
		return v
	}
	arr, ok := lookup(m, key+"Array")
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(unwrapString(arr), &items) != nil || i >= len(items) {
		return nil
	}
	return items[i]
}

func (m metadata) str(key string, i int) string {
	raw := bytes.TrimSpace(m.get(key, i))
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] != '"' {
		return string(raw)
	}
	b, err := bodyBytes(raw, "")
	if err != nil {
		return ""
	}
	return string(b)
}

func (m metadata) int(key string, i int) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(m.str(key, i)))
	return n, err == nil
}

// object returns key as a JSON object, also when the host sent it as a
// string holding one.
func (m metadata) object(key string, i int) (map[string]any, error) {
	raw := m.get(key, i)
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(unwrapString(raw)))
	d.UseNumber()
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return nil, fmt.Errorf("the invocation's Metadata.%s is not a JSON object: %w", key, err)
	}
	return obj, nil
}

// retryAttempt is the attempt a function retry policy reports
// (RetryContext.RetryCount + 1), or 1.
func (m metadata) retryAttempt() int {
	rc, err := m.object("RetryContext", -1)
	if err != nil || rc == nil {
		return 1
	}
	for k, v := range rc {
		if strings.EqualFold(k, "RetryCount") {
			if n, err := strconv.Atoi(fmt.Sprint(v)); err == nil && n >= 0 {
				return n + 1
			}
		}
	}
	return 1
}

// eventGridTrigger decodes the event of an Event Grid trigger. A JSON object
// that is not a valid event is undecodable; anything else fails.
func eventGridTrigger(raw json.RawMessage) (Invocation, error) {
	obj := bytes.TrimSpace(unwrapString(raw))
	if len(obj) > 0 && obj[0] == '"' { // encoded twice
		obj = bytes.TrimSpace(unwrapString(obj))
	}
	ev, err := eventgrid.DecodeEvent(obj)
	if err != nil {
		if len(obj) == 0 || obj[0] != '{' || !json.Valid(obj) {
			return Invocation{}, err
		}
		return Invocation{Event: eventgrid.UndecodableEvent(obj, "/eventgrid"), DecodeError: err}, nil
	}
	return Invocation{Event: ev}, nil
}
