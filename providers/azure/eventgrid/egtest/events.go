package egtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/crossbus/crossbus/internal/cewire"
)

// readBody reads at most MaxRequestBytes; more is a 413.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "cannot read the request body: "+err.Error())
		return nil, false
	}
	if len(b) > MaxRequestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			fmt.Sprintf("the request body is over the limit of %d bytes", MaxRequestBytes))
		return nil, false
	}
	return b, true
}

// cloudEvents reads the CloudEvents of a publish request: a structured event,
// a batch, or (when binary is true) a binary-mode event, which is stored in
// the JSON event format.
func cloudEvents(r *http.Request, body []byte, binary bool) ([]json.RawMessage, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/cloudevents-batch+json":
		var evs []json.RawMessage
		if err := json.Unmarshal(body, &evs); err != nil {
			return nil, fmt.Errorf("the body of a %s request must be a JSON array of events: %v", mt, err)
		}
		return evs, nil
	case mt == "application/cloudevents+json":
		return []json.RawMessage{bytes.TrimSpace(body)}, nil
	case binary && r.Header.Get("ce-specversion") != "":
		ev, err := cehttp.NewEventFromHTTPRequest(&http.Request{Header: r.Header, Body: io.NopCloser(bytes.NewReader(body))})
		if err != nil {
			return nil, fmt.Errorf("binary-mode CloudEvent: %v", err)
		}
		// Data that is not text is kept as data_base64, as Event Grid does.
		raw, err := cewire.MarshalStructured(ev)
		if err != nil {
			return nil, err
		}
		return []json.RawMessage{raw}, nil
	}
	return nil, fmt.Errorf("unsupported content type %q: want application/cloudevents+json or application/cloudevents-batch+json", r.Header.Get("Content-Type"))
}

// checkCloudEvent validates one event as Event Grid does and returns it
// decoded.
func checkCloudEvent(raw json.RawMessage) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("an event is not a JSON object")
	}
	if sv, _ := m["specversion"].(string); sv != "1.0" {
		return nil, fmt.Errorf("specversion must be \"1.0\", got %v", m["specversion"])
	}
	for _, a := range []string{"id", "source", "type"} {
		if s, _ := m[a].(string); s == "" {
			return nil, fmt.Errorf("required attribute %q is missing or not a non-empty string", a)
		}
	}
	if b64, ok := m["data_base64"]; ok {
		if _, d := m["data"]; d {
			return nil, fmt.Errorf("an event has both data and data_base64")
		}
		s, isString := b64.(string)
		if _, err := base64.StdEncoding.DecodeString(s); !isString || err != nil {
			return nil, fmt.Errorf("data_base64 must be a base64 string")
		}
	}
	for name, v := range m {
		switch name {
		case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data", "data_base64":
			continue
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				return nil, fmt.Errorf("extension attribute name %q must be lower-case letters and digits", name)
			}
		}
		switch v.(type) {
		case string, json.Number, bool, nil:
		default:
			return nil, fmt.Errorf("extension attribute %q must be a string, number or boolean", name)
		}
	}
	return m, nil
}

// validateAll checks a publish request's events; it writes the error.
func (s *Server) validateAll(w http.ResponseWriter, evs []json.RawMessage, maxEvents int) bool {
	if len(evs) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "the request has no events")
		return false
	}
	if len(evs) > maxEvents {
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("the request has %d events, over the limit of %d", len(evs), maxEvents))
		return false
	}
	s.mu.Lock()
	reject := s.reject
	s.mu.Unlock()
	for i, raw := range evs {
		m, err := checkCloudEvent(raw)
		if err == nil && reject != nil {
			if reason := reject(m); reason != "" {
				err = fmt.Errorf("%s", reason)
			}
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("event %d: %v", i, err))
			return false
		}
	}
	return true
}

// splitOp splits "name:op" into its parts.
func splitOp(seg string) (string, string) {
	name, op, _ := strings.Cut(seg, ":")
	return name, op
}
