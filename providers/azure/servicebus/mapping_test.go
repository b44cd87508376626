package servicebus_test

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

func TestMessageFromEventUsesTheAMQPBinding(t *testing.T) {
	e := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	e.SetSubject("orders/42")
	e.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&e, map[string]int{"id": 42}))
	e.SetExtension("priority", int32(7))
	e.SetExtension("urgent", true)
	crossbus.SetPartitionKey(&e, "customer-9")

	m, err := servicebus.MessageFromEvent(&e)
	require.NoError(t, err)
	assert.Equal(t, e.ID(), *m.MessageID, "MessageID is the event id (duplicate detection)")
	assert.Equal(t, "application/json", *m.ContentType)
	assert.Equal(t, "customer-9", *m.SessionID, "partitionkey is the SessionID")
	assert.Equal(t, "orders/42", *m.Subject)
	assert.JSONEq(t, `{"id":42}`, string(m.Body))
	assert.Equal(t, map[string]any{
		"cloudEvents_specversion":  "1.0",
		"cloudEvents_id":           e.ID(),
		"cloudEvents_source":       "https://example.com/shop",
		"cloudEvents_type":         "com.example.order.placed",
		"cloudEvents_subject":      "orders/42",
		"cloudEvents_time":         "2026-11-29T12:30:45.123456789Z",
		"cloudEvents_priority":     int64(7),
		"cloudEvents_urgent":       true,
		"cloudEvents_partitionkey": "customer-9",
	}, m.ApplicationProperties)
}

func ptr[T any](v T) *T { return &v }

func received(props map[string]any, body string) *azservicebus.ReceivedMessage {
	return &azservicebus.ReceivedMessage{MessageID: "msg-1", ApplicationProperties: props, Body: []byte(body)}
}

func TestEventFromMessage(t *testing.T) {
	enq := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seq := int64(77)
	ct := "text/plain"
	jsonCT := "application/cloudevents+json"
	session := "k-1"
	subject := "label"
	tests := []struct {
		name    string
		msg     *azservicebus.ReceivedMessage
		wantErr string
		check   func(t *testing.T, e *crossbus.Event)
	}{
		{name: "underscore prefix", msg: received(map[string]any{"cloudEvents_specversion": "1.0", "cloudEvents_id": "e1",
			"cloudEvents_source": "/s", "cloudEvents_type": "t", "cloudEvents_tenant": "acme"}, "x"),
			check: func(t *testing.T, e *crossbus.Event) {
				assert.Equal(t, "e1", e.ID())
				assert.Equal(t, "acme", crossbus.ExtensionString(e, "tenant"))
			}},
		{name: "colon prefix with native AMQP types", msg: received(map[string]any{"cloudEvents:specversion": "1.0", "cloudEvents:id": "e2",
			"cloudEvents:source": "/s", "cloudEvents:type": "t", "cloudEvents:time": enq, "cloudEvents:count": int64(5),
			"cloudEvents:flag": true, "cloudEvents:blob": []byte{1, 2}}, ""),
			check: func(t *testing.T, e *crossbus.Event) {
				assert.Equal(t, "e2", e.ID())
				assert.True(t, enq.Equal(e.Time()))
				assert.Equal(t, int32(5), e.Extensions()["count"])
				assert.Equal(t, true, e.Extensions()["flag"])
				assert.Equal(t, []byte{1, 2}, e.Extensions()["blob"])
				assert.Nil(t, e.Data(), "an empty body without content type is no data")
			}},
		{name: "id falls back to MessageID", msg: received(map[string]any{"cloudEvents_specversion": "1.0",
			"cloudEvents_source": "/s", "cloudEvents_type": "t"}, ""),
			check: func(t *testing.T, e *crossbus.Event) { assert.Equal(t, "msg-1", e.ID()) }},
		{name: "unsupported specversion", msg: received(map[string]any{"cloudEvents_specversion": "0.3", "cloudEvents_id": "e",
			"cloudEvents_source": "/s", "cloudEvents_type": "t"}, ""), wantErr: "specversion"},
		{name: "binding message without type", msg: received(map[string]any{"cloudEvents_specversion": "1.0", "cloudEvents_id": "e",
			"cloudEvents_source": "/s"}, ""), wantErr: "type"},
		{name: "structured mode", msg: &azservicebus.ReceivedMessage{MessageID: "m", ContentType: &jsonCT,
			Body: []byte(`{"specversion":"1.0","id":"s1","source":"/src","type":"t","data":{"a":1}}`)},
			check: func(t *testing.T, e *crossbus.Event) {
				assert.Equal(t, "s1", e.ID())
				assert.JSONEq(t, `{"a":1}`, string(e.Data()))
			}},
		{name: "structured mode, broken JSON", msg: &azservicebus.ReceivedMessage{ContentType: &jsonCT, Body: []byte(`{`)}, wantErr: "structured"},
		{name: "foreign message", msg: &azservicebus.ReceivedMessage{MessageID: "ext-1", ContentType: &ct, Body: []byte("hello"),
			EnqueuedTime: &enq, SessionID: &session, Subject: &subject,
			ApplicationProperties: map[string]any{"region": "eu", "Bad-Name": "dropped", "retries": int64(2)}},
			check: func(t *testing.T, e *crossbus.Event) {
				assert.Equal(t, "ext-1", e.ID())
				assert.Equal(t, "/orders", e.Source())
				assert.Equal(t, servicebus.ForeignEventType, e.Type())
				assert.True(t, enq.Equal(e.Time()))
				assert.Equal(t, "label", e.Subject())
				assert.Equal(t, "text/plain", e.DataContentType())
				assert.Equal(t, "hello", string(e.Data()))
				assert.Equal(t, "k-1", crossbus.PartitionKey(e))
				assert.Equal(t, "eu", crossbus.ExtensionString(e, "region"))
				assert.Equal(t, int32(2), e.Extensions()["retries"])
				assert.NotContains(t, e.Extensions(), "bad-name")
			}},
		{name: "foreign message with a content type that is not a media type", msg: &azservicebus.ReceivedMessage{MessageID: "x",
			ContentType: ptr("json"), Body: []byte("{}")},
			check: func(t *testing.T, e *crossbus.Event) {
				assert.Empty(t, e.DataContentType())
				assert.Equal(t, "{}", string(e.Data()))
			}},
		{name: "foreign message without id", msg: &azservicebus.ReceivedMessage{SequenceNumber: &seq},
			check: func(t *testing.T, e *crossbus.Event) { assert.Equal(t, "orders/77", e.ID()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := servicebus.EventFromMessage(tc.msg, "orders")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, crossbus.Validate(e), "decoded events are valid")
			tc.check(t, e)
		})
	}
}

// FuzzEventFromMessage decodes arbitrary AMQP messages (as the SDK would
// present them): decoding must never panic, and an event it returns is valid.
func FuzzEventFromMessage(f *testing.F) {
	seed := func(m *amqp.Message) {
		b, err := m.MarshalBinary()
		require.NoError(f, err)
		f.Add(b)
	}
	ct := "application/json"
	seed(&amqp.Message{Properties: &amqp.MessageProperties{MessageID: "m", ContentType: &ct}, Data: [][]byte{[]byte(`{}`)},
		ApplicationProperties: map[string]any{"cloudEvents_specversion": "1.0", "cloudEvents_id": "i", "cloudEvents_source": "/s",
			"cloudEvents_type": "t", "cloudEvents_time": "2026-01-01T00:00:00Z", "cloudEvents_n": int64(1)}})
	structured := "application/cloudevents+json"
	seed(&amqp.Message{Properties: &amqp.MessageProperties{ContentType: &structured},
		Data: [][]byte{[]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t"}`)}})
	seed(&amqp.Message{Data: [][]byte{[]byte("plain")}, ApplicationProperties: map[string]any{"k": "v", "cloudEvents:time": int64(3)}})
	f.Fuzz(func(t *testing.T, b []byte) {
		var am amqp.Message
		if err := am.UnmarshalBinary(b); err != nil {
			return
		}
		m := &azservicebus.ReceivedMessage{ApplicationProperties: am.ApplicationProperties}
		if len(am.Data) == 1 {
			m.Body = am.Data[0]
		}
		if p := am.Properties; p != nil {
			m.MessageID, _ = p.MessageID.(string)
			m.ContentType, m.Subject, m.SessionID = p.ContentType, p.Subject, p.GroupID
		}
		e, err := servicebus.EventFromMessage(m, "fuzz")
		if err != nil {
			return
		}
		if err := crossbus.Validate(e); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		// What decodes must encode back.
		if _, err := servicebus.MessageFromEvent(e); err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
	})
}
