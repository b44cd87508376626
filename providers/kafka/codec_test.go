package kafka

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/cewire"
)

func headers(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestDecodeRecordErrorsNameTheHeader(t *testing.T) {
	base := []string{"ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s", "ce_type", "t"}
	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
		want string
	}{
		{"no CloudEvent", headers("content-type", "text/plain"), "not a CloudEvent"},
		{"missing id", headers("ce_specversion", "1.0", "ce_source", "/s", "ce_type", "t"), "ce_id"},
		{"missing source", headers("ce_specversion", "1.0", "ce_id", "1", "ce_type", "t"), "ce_source"},
		{"missing type", headers("ce_specversion", "1.0", "ce_id", "1", "ce_source", "/s"), "ce_type"},
		{"old spec version", headers("ce_specversion", "0.3", "ce_id", "1", "ce_source", "/s", "ce_type", "t"), `"ce_specversion"`},
		{"bad time", headers(append(base, "ce_time", "noon")...), `"ce_time"`},
		{"bad extension name", headers(append(base, "ce_my-ext", "v")...), `"ce_my-ext"`},
		{"not UTF-8", append(headers(base...), kgo.RecordHeader{Key: "ce_x", Value: []byte{0xff}}), `"ce_x"`},
		{"bad structured JSON", headers("content-type", "application/cloudevents+json"), "structured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e crossbus.Event
			err := DecodeRecord(nil, []byte("{"), tc.hs, &e)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeRecordFirstOfRepeatedHeadersWins(t *testing.T) {
	var e crossbus.Event
	hs := headers("ce_specversion", "1.0", "ce_id", "first", "CE_ID", "second", "ce_source", "/s", "ce_type", "t",
		"ce_tenant", "a", "ce_tenant", "b", "content-type", "text/plain", "Content-Type", "application/json")
	require.NoError(t, DecodeRecord(nil, []byte("x"), hs, &e))
	assert.Equal(t, "first", e.ID())
	assert.Equal(t, "a", crossbus.ExtensionString(&e, "tenant"))
	assert.Equal(t, "text/plain", e.DataContentType())
}

func TestDecodeRecordReadsStructuredMode(t *testing.T) {
	in := crossbus.NewEvent("com.example.x", "/src")
	require.NoError(t, crossbus.SetData(&in, map[string]int{"n": 1}))
	js, err := in.MarshalJSON()
	require.NoError(t, err)
	var out crossbus.Event
	require.NoError(t, DecodeRecord([]byte("k1"), js, headers("content-type", "application/cloudevents+json"), &out))
	assert.Equal(t, in.ID(), out.ID())
	assert.Equal(t, "k1", crossbus.PartitionKey(&out))
	assert.JSONEq(t, `{"n":1}`, string(out.Data()))
}

func TestDeadLetterTopicNames(t *testing.T) {
	assert.Equal(t, "crossbus-dlq.orders.billing", DeadLetterTopic("orders", "billing"))
	a, b := DeadLetterTopic("a.b", "c"), DeadLetterTopic("a", "b.c")
	assert.NotEqual(t, a, b, "names with dots get a hash so they cannot collide")
	for _, n := range []string{a, b, DeadLetterTopic("orders", "billing service/eu"), DeadLetterTopic(strings.Repeat("t", 240), "s")} {
		assert.NoError(t, validTopic(n), n)
	}
	assert.NotEqual(t, DeadLetterTopic(strings.Repeat("t", 240), "s1"), DeadLetterTopic(strings.Repeat("t", 240), "s2"))
}

func TestValidTopic(t *testing.T) {
	assert.NoError(t, validTopic("orders.v1_EU-2"))
	for _, bad := range []string{"", ".", "..", "with space", "a/b", strings.Repeat("x", 250)} {
		assert.Error(t, validTopic(bad), bad)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	in.SetSubject("orders/42 – größe\nnext")
	in.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	in.SetExtension("priority", int32(7))
	in.SetExtension("flag", true)
	require.NoError(t, crossbus.SetData(&in, []byte{0, 1, 2, 255}))
	rec, err := EncodeRecord("orders", &in)
	require.NoError(t, err)
	assert.Nil(t, rec.Key, "no partition key, no record key")
	var out crossbus.Event
	require.NoError(t, DecodeRecord(rec.Key, rec.Value, rec.Headers, &out))
	assert.Equal(t, in.Subject(), out.Subject())
	assert.Equal(t, "7", crossbus.ExtensionString(&out, "priority"))
	assert.Equal(t, "true", crossbus.ExtensionString(&out, "flag"))
	assert.Equal(t, in.Data(), out.Data())
	assert.Equal(t, "application/octet-stream", out.DataContentType())
}

// FuzzDecodeRecord feeds arbitrary keys, headers and values to the decoder:
// it must never panic, and whatever it accepts must survive a re-encode.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("k"), "ce_specversion: 1.0\nce_id: 1\nce_source: /s\nce_type: t\ncontent-type: application/json\nce_tenant: a", []byte(`{"a":1}`))
	f.Add([]byte{}, "content-type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`))
	f.Add([]byte{0xff}, "CE_SPECVERSION: 1.0\nCe_Id: x\nce_source: ::\nce_type: t\nce_time: 2026-01-01T00:00:00+02:00", []byte{})
	f.Fuzz(func(t *testing.T, key []byte, block string, value []byte) {
		var hs []kgo.RecordHeader
		for _, line := range strings.Split(block, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if ok {
				hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
		}
		var e crossbus.Event
		if err := DecodeRecord(key, value, hs, &e); err != nil {
			return
		}
		require.NotEmpty(t, e.ID())
		require.NotEmpty(t, e.Type())
		require.NotEmpty(t, e.Source())
		for name := range e.Extensions() {
			require.True(t, cewire.ValidExtensionName(name), name)
		}
		rec, err := EncodeRecord("t", &e)
		if err != nil {
			return
		}
		var again crossbus.Event
		require.NoError(t, DecodeRecord(rec.Key, rec.Value, rec.Headers, &again))
		require.Equal(t, e.ID(), again.ID())
		require.Equal(t, e.Source(), again.Source())
		require.Equal(t, e.Type(), again.Type())
		require.Equal(t, e.Subject(), again.Subject())
		require.Equal(t, e.DataContentType(), again.DataContentType())
		require.True(t, e.Time().Equal(again.Time()))
		require.True(t, bytes.Equal(e.Data(), again.Data()))
		require.Equal(t, crossbus.PartitionKey(&e), crossbus.PartitionKey(&again))
		for name := range e.Extensions() {
			require.Equal(t, crossbus.ExtensionString(&e, name), crossbus.ExtensionString(&again, name), name)
		}
	})
}
