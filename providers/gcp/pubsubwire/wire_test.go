package pubsubwire_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

func fullEvent(t *testing.T) crossbus.Event {
	t.Helper()
	e := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	e.SetID("order-42")
	e.SetSubject("orders/42")
	e.SetDataSchema("https://example.com/schemas/order.json")
	e.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&e, map[string]any{"id": 42}))
	e.SetExtension("tenant", "acme")
	e.SetExtension("priority", int32(7))
	e.SetExtension(crossbus.ExtPartitionKey, "customer-9")
	return e
}

func TestEncodeBinaryCarriesExactlyTheBindingAttributes(t *testing.T) {
	e := fullEvent(t)
	m, mode, err := pubsubwire.Encode(&e, pubsubwire.Binary)
	require.NoError(t, err)
	assert.Equal(t, pubsubwire.Binary, mode)
	assert.Equal(t, map[string]string{
		"ce-specversion":  "1.0",
		"ce-id":           "order-42",
		"ce-source":       "https://example.com/shop",
		"ce-type":         "com.example.order.placed",
		"ce-subject":      "orders/42",
		"ce-time":         "2026-11-29T12:30:45.123456789Z",
		"ce-dataschema":   "https://example.com/schemas/order.json",
		"content-type":    "application/json",
		"ce-tenant":       "acme",
		"ce-priority":     "7",
		"ce-partitionkey": "customer-9",
	}, m.Attributes)
	assert.JSONEq(t, `{"id":42}`, string(m.Data))
	assert.Equal(t, "customer-9", m.OrderingKey)
}

func TestBinaryRoundTrip(t *testing.T) {
	e := fullEvent(t)
	m, _, err := pubsubwire.Encode(&e, pubsubwire.Binary)
	require.NoError(t, err)
	m.ID, m.PublishTime = "m1", time.Now()
	got, f, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
	require.Equal(t, pubsubwire.FormatBinary, f)
	assertSameEvent(t, &e, &got)
}

func assertSameEvent(t *testing.T, want, got *crossbus.Event) {
	t.Helper()
	require.NoError(t, crossbus.Validate(got))
	assert.Equal(t, want.ID(), got.ID())
	assert.Equal(t, want.Type(), got.Type())
	assert.Equal(t, want.Source(), got.Source())
	assert.Equal(t, want.Subject(), got.Subject())
	assert.Equal(t, want.DataSchema(), got.DataSchema())
	assert.True(t, want.Time().Equal(got.Time()), "time %v vs %v", want.Time(), got.Time())
	assert.Equal(t, want.DataContentType(), got.DataContentType())
	assert.Equal(t, string(want.Data()), string(got.Data()))
	require.Len(t, got.Extensions(), len(want.Extensions()))
	for k := range want.Extensions() {
		assert.Equal(t, crossbus.ExtensionString(want, k), crossbus.ExtensionString(got, k), "extension %s", k)
	}
}

func TestStructuredFallbackWhenAttributesBreakLimits(t *testing.T) {
	tests := []struct {
		name   string
		modify func(e *crossbus.Event)
	}{
		{"more than 100 attributes", func(e *crossbus.Event) {
			for i := 0; i < 95; i++ {
				e.SetExtension(fmt.Sprintf("x%d", i), "v")
			}
		}},
		{"attribute value over 1024 bytes", func(e *crossbus.Event) { e.SetSubject(strings.Repeat("s", 1025)) }},
		{"attribute key over 256 bytes", func(e *crossbus.Event) { e.SetExtension(strings.Repeat("k", 254), "v") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := fullEvent(t)
			tc.modify(&e)
			m, mode, err := pubsubwire.Encode(&e, pubsubwire.Binary)
			require.NoError(t, err)
			assert.Equal(t, pubsubwire.Structured, mode)
			assert.Equal(t, pubsubwire.StructuredContentType, m.Attributes["content-type"])
			assert.NotContains(t, m.Attributes, "ce-specversion", "a structured message must not look binary")
			assert.Equal(t, "com.example.order.placed", m.Attributes["ce-type"], "attributes that fit stay for filters")
			assert.LessOrEqual(t, len(m.Attributes), pubsubwire.MaxAttributes)
			for k, v := range m.Attributes {
				assert.LessOrEqual(t, len(k), pubsubwire.MaxAttributeKeyBytes)
				assert.LessOrEqual(t, len(v), pubsubwire.MaxAttributeValueBytes)
			}
			assert.Equal(t, "customer-9", m.OrderingKey)
			got, f, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
			require.Equal(t, pubsubwire.FormatStructured, f)
			assertSameEvent(t, &e, &got)
		})
	}
}

func TestStructuredModeKeepsBinaryDataIntact(t *testing.T) {
	e := crossbus.NewEvent("com.example.blob", "/blobs")
	raw := []byte{0, 1, 2, 0xff, 0xfe}
	require.NoError(t, crossbus.SetData(&e, raw))
	bad := crossbus.NewEvent("com.example.bad", "/b")
	bad.SetDataContentType("application/json")
	bad.DataEncoded = []byte("{not json")
	for _, ev := range []*crossbus.Event{&e, &bad} {
		m, mode, err := pubsubwire.Encode(ev, pubsubwire.Structured)
		require.NoError(t, err)
		require.Equal(t, pubsubwire.Structured, mode)
		require.True(t, json.Valid(m.Data), "structured body is JSON: %s", m.Data)
		got, f, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
		require.Equal(t, pubsubwire.FormatStructured, f)
		assert.Equal(t, ev.Data(), got.Data())
	}
}

func TestEncodeRefusesWhatPubSubWouldReject(t *testing.T) {
	e := crossbus.NewEvent("t", "/s")
	crossbus.SetPartitionKey(&e, strings.Repeat("k", 1025))
	_, _, err := pubsubwire.Encode(&e, pubsubwire.Binary)
	require.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "partitionkey")
	assert.Contains(t, err.Error(), "1025")
	assert.Contains(t, err.Error(), "1024")

	big := crossbus.NewEvent("t", "/s")
	require.NoError(t, crossbus.SetData(&big, make([]byte, pubsubwire.MaxMessageBytes)))
	_, _, err = pubsubwire.Encode(&big, pubsubwire.Binary)
	var se *crossbus.SizeError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, crossbus.ErrTooLarge)
	assert.Equal(t, pubsubwire.MaxMessageBytes, se.Limit)
	assert.Greater(t, se.Size, pubsubwire.MaxMessageBytes)
}

func TestDecodeAcceptsOtherWritersSpellings(t *testing.T) {
	m := pubsubwire.Message{ID: "1", Data: []byte(`{"a":1}`), Attributes: map[string]string{
		"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "t",
		"Content-Type": "application/json", // as the CloudEvents Go SDK writes it
		"CE-Tenant":    "acme",
		"ce-not-valid": "ignored: not an extension name",
		"other":        "not part of the event",
	}}
	e, f, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
	require.Equal(t, pubsubwire.FormatBinary, f)
	assert.Equal(t, "application/json", e.DataContentType())
	assert.Equal(t, map[string]any{"tenant": "acme"}, e.Extensions())

	m2 := pubsubwire.Message{Attributes: map[string]string{"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "t",
		"ce-datacontenttype": "text/plain"}, Data: []byte("hi")}
	e2, _, _ := pubsubwire.Decode(&m2, pubsubwire.Origin{})
	assert.Equal(t, "text/plain", e2.DataContentType())
}

func TestPlainMessageBecomesMessagePublished(t *testing.T) {
	pub := time.Date(2026, 11, 29, 10, 0, 0, 500_000_000, time.UTC)
	m := pubsubwire.Message{ID: "17", PublishTime: pub, Data: []byte{1, 2, 3}, OrderingKey: "k",
		Attributes: map[string]string{"origin": "legacy"}}
	o := pubsubwire.Origin{Topic: "projects/p/topics/t", Subscription: "projects/p/subscriptions/s"}
	e, f, _ := pubsubwire.Decode(&m, o)
	require.Equal(t, pubsubwire.FormatPlain, f)
	require.NoError(t, crossbus.Validate(&e))
	assert.Equal(t, pubsubwire.MessagePublishedType, e.Type())
	assert.Equal(t, "//pubsub.googleapis.com/projects/p/topics/t", e.Source())
	assert.Equal(t, "17", e.ID())
	assert.True(t, pub.Equal(e.Time()))
	assert.Equal(t, "application/json", e.DataContentType())
	assert.JSONEq(t, `{"subscription":"projects/p/subscriptions/s","message":{"data":"AQID","attributes":{"origin":"legacy"},
		"messageId":"17","message_id":"17","publishTime":"2026-11-29T10:00:00.5Z","publish_time":"2026-11-29T10:00:00.5Z","orderingKey":"k"}}`,
		string(e.Data()))
	d, err := crossbus.DataAs[pubsubwire.MessagePublishedData](&e)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3}, d.Message.Data)
	assert.Equal(t, "17", d.Message.MessageID)
	assert.True(t, pub.Equal(d.Message.PublishTime))
}

func TestInvalidCloudEventIsUndecodableWithTheReason(t *testing.T) {
	tests := map[string]pubsubwire.Message{
		"missing id":         {ID: "9", Attributes: map[string]string{"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}},
		"unknown version":    {ID: "9", Attributes: map[string]string{"ce-specversion": "0.1", "ce-id": "x", "ce-source": "/s", "ce-type": "t"}},
		"bad time":           {ID: "9", Attributes: map[string]string{"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "t", "ce-time": "yesterday"}},
		"structured garbage": {ID: "9", Data: []byte("{"), Attributes: map[string]string{"content-type": "application/cloudevents+json"}},
		"batch format":       {ID: "9", Data: []byte("[]"), Attributes: map[string]string{"content-type": "application/cloudevents-batch+json"}},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			m.OrderingKey = "k"
			e, f, err := pubsubwire.Decode(&m, pubsubwire.Origin{Topic: "projects/p/topics/t"})
			require.Error(t, err)
			assert.Equal(t, pubsubwire.FormatInvalid, f)
			assert.Equal(t, driver.TypeUndecodable, e.Type(), "the placeholder")
			assert.Equal(t, "9", e.ID())
			assert.Equal(t, "//pubsub.googleapis.com/projects/p/topics/t", e.Source())
			assert.Equal(t, m.Data, e.Data(), "the data as it arrived")
			headers := map[string]string{}
			require.NoError(t, json.Unmarshal([]byte(crossbus.ExtensionString(&e, driver.ExtRawHeaders)), &headers))
			assert.Equal(t, "k", headers["orderingKey"])
			for k, v := range m.Attributes {
				assert.Equal(t, v, headers[k], "attribute %s", k)
			}
			assert.NoError(t, crossbus.Validate(&e))
		})
	}
}

func TestPubSubDeadLetterAttributesBecomeDeadLetterExtensions(t *testing.T) {
	e := crossbus.NewEvent("t", "/s")
	m, _, err := pubsubwire.Encode(&e, pubsubwire.Binary)
	require.NoError(t, err)
	m.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = "5"
	m.Attributes["CloudPubSubDeadLetterSourceSubscription"] = "orders-billing"
	m.Attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] = "p"
	m.PublishTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got, _, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
	info, ok := crossbus.DeadLetterInfoOf(&got)
	require.True(t, ok)
	assert.Equal(t, 5, info.Attempts)
	assert.Equal(t, "projects/p/subscriptions/orders-billing", info.Subscription)
	assert.Contains(t, info.Reason, "dead-letter policy")
	assert.True(t, m.PublishTime.Equal(info.Time))

	// An event crossbus dead-lettered itself keeps its own reason.
	dl := driver.DeadLetterEvent(&e, crossbus.DeadLetterInfo{Reason: "card declined", Attempts: 1})
	m2, _, err := pubsubwire.Encode(&dl, pubsubwire.Binary)
	require.NoError(t, err)
	m2.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = "5"
	got2, _, _ := pubsubwire.Decode(&m2, pubsubwire.Origin{})
	info2, _ := crossbus.DeadLetterInfoOf(&got2)
	assert.Equal(t, "card declined", info2.Reason)
	assert.Equal(t, 1, info2.Attempts)
}

func TestPublishedMessageReadsBothSpellings(t *testing.T) {
	var a, b pubsubwire.PublishedMessage
	require.NoError(t, json.Unmarshal([]byte(`{"data":"aGk=","messageId":"1","publishTime":"2021-02-05T04:06:14.109Z","orderingKey":"k"}`), &a))
	require.NoError(t, json.Unmarshal([]byte(`{"data":"aGk","message_id":"1","publish_time":"2021-02-05T04:06:14.109Z","ordering_key":"k"}`), &b))
	assert.Equal(t, a, b)
	assert.Equal(t, "hi", string(a.Data))
	var bad pubsubwire.PublishedMessage
	assert.Error(t, json.Unmarshal([]byte(`{"data":"***"}`), &bad))
	assert.Error(t, json.Unmarshal([]byte(`{"publishTime":"noon"}`), &bad))
}

func TestNoDataRoundTripsAsNoData(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	m, _, err := pubsubwire.Encode(&e, pubsubwire.Binary)
	require.NoError(t, err)
	assert.Empty(t, m.Data)
	got, _, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
	assert.Nil(t, got.Data())
	assert.Empty(t, got.DataContentType())
}

func TestSDKSpellingWritesContentTypeCapitalisedInBothModes(t *testing.T) {
	e := fullEvent(t)
	enc := pubsubwire.Encoder{Spelling: pubsubwire.SDKSpelling}
	m, mode, err := enc.Encode(&e)
	require.NoError(t, err)
	assert.Equal(t, pubsubwire.Binary, mode)
	assert.Equal(t, "application/json", m.Attributes["Content-Type"])
	assert.NotContains(t, m.Attributes, "content-type")
	got, f, err := pubsubwire.Decode(&m, pubsubwire.Origin{})
	require.NoError(t, err)
	assert.Equal(t, pubsubwire.FormatBinary, f)
	assert.Equal(t, "application/json", got.DataContentType(), "both spellings are read")

	enc.Mode = pubsubwire.Structured
	m, mode, err = enc.Encode(&e)
	require.NoError(t, err)
	assert.Equal(t, pubsubwire.Structured, mode)
	assert.Equal(t, pubsubwire.StructuredContentType, m.Attributes["Content-Type"])
	assert.NotContains(t, m.Attributes, "content-type")
	assert.NotContains(t, m.Attributes, "ce-specversion")
	got, f, err = pubsubwire.Decode(&m, pubsubwire.Origin{})
	require.NoError(t, err)
	assert.Equal(t, pubsubwire.FormatStructured, f)
	assert.Equal(t, e.ID(), got.ID())
	assert.Equal(t, "application/json", got.DataContentType())

	m, _, err = pubsubwire.Encode(&e, pubsubwire.Binary)
	require.NoError(t, err)
	assert.Equal(t, "application/json", m.Attributes["content-type"], "Google's spelling is the default")
	assert.Equal(t, "sdk", pubsubwire.SDKSpelling.String())
	assert.Equal(t, "google", pubsubwire.GoogleSpelling.String())
}
