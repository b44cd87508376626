package pubsubwire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// FuzzDecode feeds arbitrary messages to the decoder: it must never panic,
// must always return a valid CloudEvent, and a CloudEvent it read must encode
// and decode to the same attributes again.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "ce-specversion", "1.0", "ce-id", "x", "ce-source", "/s", "ce-type", "t", "content-type", "application/json")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"x":1}}`), "content-type", "application/cloudevents+json", "ce-type", "t", "", "", "", "", "", "")
	f.Add([]byte("plain"), "origin", "legacy", "", "", "", "", "", "", "", "")
	f.Add([]byte{0xff}, "ce-specversion", "1.0", "ce-time", "2020-01-01T00:00:00Z", "ce-source", "%%", "ce-x", "y", "Content-Type", "bad/;;")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAE="}`), "Content-Type", "Application/CloudEvents+JSON; charset=utf-8", "CloudPubSubDeadLetterSourceDeliveryCount", "5", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, data []byte, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5 string) {
		attrs := map[string]string{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}, {k4, v4}, {k5, v5}} {
			if kv[0] != "" {
				attrs[kv[0]] = kv[1]
			}
		}
		m := pubsubwire.Message{Data: data, Attributes: attrs, ID: "m1", PublishTime: time.Unix(1700000000, 0)}
		e, f, derr := pubsubwire.Decode(&m, pubsubwire.Origin{Topic: "projects/p/topics/t"})
		if (derr != nil) != (f == pubsubwire.FormatInvalid) {
			t.Fatalf("Decode returned format %v with error %v", f, derr)
		}
		if err := crossbus.Validate(&e); err != nil {
			t.Fatalf("Decode (%v) returned an invalid event: %v", f, err)
		}
		if _, err := json.Marshal(&e); err != nil {
			t.Fatalf("decoded event (%v) does not marshal: %v", f, err)
		}
		if f != pubsubwire.FormatBinary && f != pubsubwire.FormatStructured {
			return
		}
		m2, _, err := pubsubwire.Encode(&e, pubsubwire.Binary)
		if err != nil {
			return // e.g. a partition key over the ordering-key limit
		}
		e2, f2, err := pubsubwire.Decode(&m2, pubsubwire.Origin{})
		if f2 != pubsubwire.FormatBinary && f2 != pubsubwire.FormatStructured {
			t.Fatalf("re-encoded event decodes as %v: %v", f2, err)
		}
		if e2.ID() != e.ID() || e2.Type() != e.Type() || e2.Source() != e.Source() || string(e2.Data()) != string(e.Data()) {
			t.Fatalf("round trip changed the event:\n%v\n%v", e, e2)
		}
	})
}
