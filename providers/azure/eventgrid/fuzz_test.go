package eventgrid

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

var fuzzBodies = []string{
	`{"specversion":"1.0","id":"a","source":"/s","type":"t","datacontenttype":"application/json","data":{"x":1}}`,
	`{"specversion":"1.0","id":"a","source":"/s","type":"t","data_base64":"AAEC","tenant":"acme","n":7,"b":true}`,
	`{"specversion":"1.0","id":"a","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi","time":"2026-11-29T10:00:00.1234567Z"}`,
	`[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t"}]`,
	`[{"id":"e","topic":"/t","subject":"s","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-11-29T10:00:00Z","data":{"api":"PutBlob"},"dataVersion":"1.0"}]`,
	`[{"id":"v","topic":"/t","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"c"}}]`,
	`{"specversion":"0.3","id":"a"}`, `[]`, `null`, `{}`, `[{"eventType":""}]`,
	`[{"specversion":"1.0","id":"x"},{"specversion":"1.0","id":"a","source":"/s","type":"t"}]`,
}

// FuzzDecodePush feeds webhook bodies with each content type a sender may
// use. Whatever decodes must be valid CloudEvents that survive a trip
// through the wire form crossbus publishes.
func FuzzDecodePush(f *testing.F) {
	for _, b := range fuzzBodies {
		for ct := range 5 {
			f.Add(uint8(ct), []byte(b))
		}
	}
	cts := []string{"application/cloudevents+json", "application/cloudevents-batch+json", "application/json", "", "text/plain"}
	f.Fuzz(func(t *testing.T, ct uint8, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", cts[int(ct)%len(cts)])
		if ct >= 128 {
			h.Set("ce-specversion", "1.0")
			h.Set("ce-id", "bin")
			h.Set("ce-source", "/bin")
			h.Set("ce-type", "t")
		}
		p, err := DecodePush(h, body)
		if err != nil {
			return
		}
		if p.ValidationCode != "" && len(p.Events) > 0 {
			t.Fatalf("validation push with %d events", len(p.Events))
		}
		if p.DecodeErrors != nil && len(p.DecodeErrors) != len(p.Events) {
			t.Fatalf("%d decode errors for %d events", len(p.DecodeErrors), len(p.Events))
		}
		for i, ev := range p.Events {
			if p.DecodeErrors != nil && p.DecodeErrors[i] != nil && ev.Type() != driver.TypeUndecodable {
				t.Fatalf("event %d did not decode (%v) but is not a placeholder: %v", i, p.DecodeErrors[i], ev)
			}
			checkRoundTrip(t, ev)
		}
	})
}

// FuzzDecodeEvent covers single events in either schema (the Functions
// Event Grid trigger's input).
func FuzzDecodeEvent(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"id":"e","topic":"/t","eventType":"x","eventTime":"not a time","data":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := DecodeEvent(raw)
		if err != nil {
			return
		}
		checkRoundTrip(t, ev)
	})
}

// FuzzDecodeReceiveResult covers the namespace receive response.
func FuzzDecodeReceiveResult(f *testing.F) {
	f.Add([]byte(`{"value":[{"brokerProperties":{"lockToken":"t1","deliveryCount":2},"event":` + fuzzBodies[0] + `}]}`))
	f.Add([]byte(`{"value":[{"brokerProperties":{"lockToken":"t1"},"event":{"id":1}}]}`))
	f.Add([]byte(`{"value":[{"event":{}}]}`))
	f.Add([]byte(`{"value":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeReceiveResult(body)
		if err != nil {
			return
		}
		for _, g := range got {
			if g.token == "" || g.count < 1 {
				t.Fatalf("entry without lock token or with count %d", g.count)
			}
			if g.err == nil {
				checkRoundTrip(t, g.ev)
			}
		}
	})
}

func checkRoundTrip(t *testing.T, ev *crossbus.Event) {
	t.Helper()
	if err := crossbus.Validate(ev); err != nil {
		t.Fatalf("decoded an invalid event: %v", err)
	}
	ce, size, err := toAzure(ev)
	if err != nil {
		return // e.g. an extension value the Azure form cannot carry
	}
	b, err := json.Marshal(ce)
	if err != nil || len(b) != size {
		t.Fatalf("encode: %v (size %d, measured %d)", err, len(b), size)
	}
	back, err := DecodeCloudEvent(b)
	if err != nil {
		t.Fatalf("re-decoding what crossbus would publish failed: %v\n%s", err, b)
	}
	if back.ID() != ev.ID() || back.Source() != ev.Source() || back.Type() != ev.Type() || back.Subject() != ev.Subject() {
		t.Fatalf("round trip changed the event: %v -> %v", ev, back)
	}
}
