package push_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp/push"
)

// FuzzDecodeRequest feeds arbitrary push requests to the decoder: it must
// never panic, must refuse with a status, or return a valid CloudEvent.
func FuzzDecodeRequest(f *testing.F) {
	f.Add("application/json", "", `{"message":{"data":"aGk=","attributes":{"a":"b"},"messageId":"1","publishTime":"2026-01-01T00:00:00Z"},"subscription":"projects/p/subscriptions/s","deliveryAttempt":3}`)
	f.Add("application/json", "", `{"message":{"attributes":{"ce-specversion":"1.0","ce-id":"1","ce-source":"/s","ce-type":"t"}},"subscription":"s"}`)
	f.Add("application/json", "1.0", `{"x":1}`)
	f.Add("application/cloudevents+json", "", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`)
	f.Add("application/cloudevents+json; charset=utf-8", "", `{"specversion":"1.0","id":"1","source":"//pubsub.googleapis.com/projects/p/topics/t","type":"google.cloud.pubsub.topic.v1.messagePublished","data":{"message":{"attributes":{"ce-specversion":"1.0"}}}}`)
	f.Add("application/cloudevents-batch+json", "", `[]`)
	f.Add("text/plain", "", "hello")
	f.Add("", "", `{"message":{"data":"***"}}`)
	f.Add("", "", `{"message":{},"deliveryAttempt":-1}`)
	f.Fuzz(func(t *testing.T, contentType, specversion, body string) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if specversion != "" {
			h.Set("Ce-Specversion", specversion)
			h.Set("Ce-Id", "fuzz")
			h.Set("Ce-Source", "/fuzz")
			h.Set("Ce-Type", "fuzz")
		}
		req, err := push.DecodeRequest(h, []byte(body), "projects/p/topics/t")
		if err != nil {
			var re *push.RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 {
				t.Fatalf("error without a 4xx status: %v", err)
			}
			return
		}
		if err := crossbus.Validate(&req.Event); err != nil {
			t.Fatalf("accepted an invalid event (%v): %v", req.Kind, err)
		}
		if req.Attempt < 0 {
			t.Fatalf("negative attempt %d", req.Attempt)
		}
	})
}
