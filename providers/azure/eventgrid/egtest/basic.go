package egtest

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Schema is a basic topic's event schema.
type Schema int

const (
	// CloudEventsSchema: CloudEvents 1.0 in, CloudEvents 1.0 out.
	CloudEventsSchema Schema = iota
	// EventGridSchema: Event Grid event schema in and out.
	EventGridSchema
)

type basicTopic struct {
	name      string
	schema    Schema
	published []json.RawMessage
	hooks     []*webhookSub
}

// CreateBasicTopic creates a basic (custom) topic and returns its endpoint,
// "https://127.0.0.1:<port>/basic/<name>/api/events".
func (s *Server) CreateBasicTopic(name string, schema Schema) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.basic[name]; ok {
		return "", fmt.Errorf("egtest: basic topic %q exists", name)
	}
	s.basic[name] = &basicTopic{name: name, schema: schema}
	return s.BasicEndpoint(name), nil
}

// BasicEndpoint is a basic topic's endpoint.
func (s *Server) BasicEndpoint(name string) string {
	return s.ts.URL + "/basic/" + name + "/api/events"
}

// Published returns the events a basic topic accepted, in order, as stored
// (Event Grid schema events with topic and metadataVersion filled in).
func (s *Server) Published(topic string) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.basic[topic]; t != nil {
		return append([]json.RawMessage(nil), t.published...)
	}
	return nil
}

// resourceID is the topic's Azure resource ID, Event Grid's "topic" field.
func resourceID(name string) string {
	return "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/egtest/providers/Microsoft.EventGrid/topics/" + name
}

func (s *Server) serveBasic(w http.ResponseWriter, r *http.Request, rest string) {
	name, tail, _ := strings.Cut(rest, "/")
	if tail != "api/events" {
		writeError(w, http.StatusNotFound, "NotFound", "basic topic endpoints are /basic/<topic>/api/events")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "publish is POST")
		return
	}
	if v := r.URL.Query().Get("api-version"); v != BasicAPIVersion {
		writeError(w, http.StatusBadRequest, "InvalidApiVersion", fmt.Sprintf("api-version %q is not supported; use %s", v, BasicAPIVersion))
		return
	}
	if !s.authorize(w, r, "aeg-sas-key") {
		return
	}
	s.mu.Lock()
	t := s.basic[name]
	st := s.fault("basicPublish")
	s.mu.Unlock()
	if st != 0 {
		writeError(w, st, statusCode(st), "injected failure")
		return
	}
	if t == nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("topic %q does not exist", name))
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var evs []json.RawMessage
	var err error
	if t.schema == CloudEventsSchema {
		if evs, err = cloudEvents(r, body, false); err == nil && !s.validateAll(w, evs, MaxBasicEvents) {
			return
		}
	} else {
		evs, err = eventGridEvents(r, body, name)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	s.mu.Lock()
	t.published = append(t.published, evs...)
	for _, h := range t.hooks {
		h.enqueue(evs)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// eventGridEvents validates an Event Grid schema publish: a JSON array of
// events with id, subject, eventType, eventTime, dataVersion and data. It
// fills in topic and metadataVersion as Event Grid does.
func eventGridEvents(r *http.Request, body []byte, topic string) ([]json.RawMessage, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("an Event Grid schema topic takes application/json, got %q", r.Header.Get("Content-Type"))
	}
	var in []map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("the body must be a JSON array of Event Grid events: %v", err)
	}
	if len(in) == 0 || len(in) > MaxBasicEvents {
		return nil, fmt.Errorf("a request carries 1 to %d events, got %d", MaxBasicEvents, len(in))
	}
	out := make([]json.RawMessage, len(in))
	for i, ev := range in {
		for _, f := range []string{"id", "subject", "eventType", "eventTime"} {
			var v string
			if err := json.Unmarshal(ev[f], &v); err != nil || v == "" {
				return nil, fmt.Errorf("event %d: %s must be a non-empty string", i, f)
			}
		}
		if dv, ok := ev["dataVersion"]; ok {
			var v string
			if err := json.Unmarshal(dv, &v); err != nil {
				return nil, fmt.Errorf("event %d: dataVersion must be a string", i)
			}
		} else {
			ev["dataVersion"] = json.RawMessage(`""`)
		}
		var et string
		_ = json.Unmarshal(ev["eventTime"], &et)
		if _, err := time.Parse(time.RFC3339Nano, et); err != nil {
			return nil, fmt.Errorf("event %d: eventTime %q is not an RFC 3339 time", i, et)
		}
		if _, ok := ev["data"]; !ok {
			return nil, fmt.Errorf("event %d: data is required", i)
		}
		if _, ok := ev["topic"]; !ok {
			ev["topic"], _ = json.Marshal(resourceID(topic))
		}
		if _, ok := ev["metadataVersion"]; !ok {
			ev["metadataVersion"] = json.RawMessage(`"1"`)
		}
		out[i], _ = json.Marshal(ev)
	}
	return out, nil
}
