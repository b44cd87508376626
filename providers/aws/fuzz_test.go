package aws_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/aws"
)

const (
	seedStructured  = `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1}}`
	seedEventBridge = `{"version":"0","id":"e1","detail-type":"Object Created","source":"aws.s3","account":"1","time":"2026-01-02T03:04:05Z",
		"region":"us-east-1","resources":["arn:aws:s3:::b"],"detail":{"bucket":{"name":"b"}}}`
	seedEventBridgeCE = `{"version":"0","id":"e2","detail-type":"t","source":"/s","account":"1","time":"2026-01-02T03:04:05Z",
		"region":"us-east-1","resources":[],"detail":` + seedStructured + `}`
	seedSNS = `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/s\",\"type\":\"t\"}",
		"Timestamp":"2026-01-02T03:04:05.000Z","MessageAttributes":{"k":{"Type":"Binary","Value":"AAE="}}}`
)

func mustValid(t *testing.T, e *crossbus.Event, input any) {
	t.Helper()
	if e == nil {
		t.Fatalf("nil event for %q", input)
	}
	if err := crossbus.Validate(e); err != nil {
		t.Fatalf("decoded event is invalid (%v) for input %q", err, input)
	}
	if _, err := json.Marshal(e); err != nil {
		t.Fatalf("decoded event does not encode (%v) for input %q", err, input)
	}
}

// FuzzDecodeMessage feeds SQS message bodies and attributes to the decoder:
// whatever arrives, it must yield a valid CloudEvent, or (only for a message
// that claims to be a CloudEvent) ErrMalformedCloudEvent with a valid
// placeholder event, and never panic.
func FuzzDecodeMessage(f *testing.F) {
	for _, body := range []string{seedStructured, seedEventBridge, seedEventBridgeCE, seedSNS, "plain", "", "{", `{"specversion":"1.0"}`} {
		f.Add(body, "", "", "", "")
		f.Add(body, aws.StructuredContentType, "", "", "")
		f.Add(body, "application/json", "1.0", "id-1", "/src")
	}
	f.Add("data", "text/plain", "0.3", "", "%zz")
	f.Fuzz(func(t *testing.T, body, contentType, specversion, id, source string) {
		attrs := map[string]aws.Attribute{}
		if contentType != "" {
			attrs[aws.AttrContentType] = aws.Attribute{DataType: "String", StringValue: contentType}
		}
		if specversion != "" {
			attrs["ce-specversion"] = aws.Attribute{DataType: "String", StringValue: specversion}
			attrs["ce-id"] = aws.Attribute{DataType: "String", StringValue: id}
			attrs["ce-source"] = aws.Attribute{DataType: "String", StringValue: source}
			attrs["ce-type"] = aws.Attribute{DataType: "String", StringValue: "t"}
			attrs["ce-"+id] = aws.Attribute{DataType: "String", StringValue: source}
		}
		m := aws.Message{ID: id, Body: body, Attributes: attrs, SourceARN: source, SentTimestamp: time.Unix(1, 0)}
		e, err := aws.DecodeMessage(m)
		if err != nil {
			if !errors.Is(err, aws.ErrMalformedCloudEvent) {
				t.Fatalf("DecodeMessage failed with %v, not ErrMalformedCloudEvent, for %q", err, body)
			}
			claims := strings.HasPrefix(strings.ToLower(contentType), "application/cloudevents") || specversion != "" ||
				strings.Contains(body, "specversion")
			if !claims {
				t.Fatalf("a message that claims nothing was refused (%v): %q", err, body)
			}
			placeholder := aws.UndecodableEvent(m)
			mustValid(t, placeholder, body)
			if placeholder.Type() != driver.TypeUndecodable || string(placeholder.Data()) != body {
				t.Fatalf("placeholder %v does not carry the body %q", placeholder, body)
			}
			return
		}
		mustValid(t, e, body)
	})
}

// FuzzDecodeEventBridge feeds EventBridge envelopes to the decoder: it may
// refuse what is not an envelope or a malformed CloudEvent, but what it
// accepts is a valid event.
func FuzzDecodeEventBridge(f *testing.F) {
	for _, s := range []string{seedEventBridge, seedEventBridgeCE, seedStructured, `{"id":"x","source":"s","detail":{}}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		e, err := aws.DecodeEventBridge(doc)
		if err != nil {
			return
		}
		mustValid(t, e, doc)
	})
}

// FuzzDecodeNotification feeds SNS notifications to the decoder.
func FuzzDecodeNotification(f *testing.F) {
	f.Add("m-1", "arn:aws:sns:us-east-1:1:t", "subject", seedStructured, "String", "v")
	f.Add("", "", "", seedSNS, "Binary", "AAE=")
	f.Add("x", "::", " ", "", "Binary", "not base64")
	f.Fuzz(func(t *testing.T, id, topic, subject, message, attrType, attrValue string) {
		n := aws.Notification{MessageID: id, TopicARN: topic, Subject: subject, Message: message,
			Attributes: map[string]aws.Attribute{"a": aws.SNSAttribute(attrType, attrValue)}}
		e, err := aws.DecodeNotification(n)
		if err != nil {
			if !errors.Is(err, aws.ErrMalformedCloudEvent) {
				t.Fatalf("DecodeNotification failed with %v, not ErrMalformedCloudEvent, for %q", err, message)
			}
			return
		}
		mustValid(t, e, message)
	})
}

// FuzzMessageRoundTrip checks that what crossbus writes to SQS reads back
// as the same event, in both modes.
func FuzzMessageRoundTrip(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "com.example.t", "/s", "sub", "key", "application/json", false)
	f.Add([]byte{0, 1, 2, 255}, "t", "https://x/y", "", "", "application/octet-stream", true)
	f.Add([]byte("hello"), "t", "/s", "", "", "text/plain", true)
	f.Fuzz(func(t *testing.T, data []byte, typ, source, subject, key, ct string, binary bool) {
		e := crossbus.NewEvent(typ, source)
		if subject != "" {
			e.SetSubject(subject)
		}
		if key != "" {
			crossbus.SetPartitionKey(&e, key)
		}
		e.SetDataContentType(ct)
		if err := crossbus.SetData(&e, data); err != nil || crossbus.Validate(&e) != nil {
			return
		}
		mode := aws.Structured
		if binary {
			mode = aws.Binary
		}
		body, attrs, err := aws.EncodeMessageForTest(&e, mode)
		if err != nil {
			return
		}
		got, err := aws.DecodeMessage(aws.Message{ID: "m", Body: body, Attributes: attrs})
		if err != nil {
			t.Fatalf("what crossbus wrote does not decode: %v", err)
		}
		if got.ID() != e.ID() || got.Type() != e.Type() || got.Source() != e.Source() || got.Subject() != e.Subject() ||
			crossbus.PartitionKey(got) != key {
			t.Fatalf("round trip changed the event: sent %v, got %v", e, got)
		}
		if !bytes.Equal(got.Data(), e.Data()) {
			t.Fatalf("round trip changed the data: sent %q, got %q", e.Data(), got.Data())
		}
	})
}
