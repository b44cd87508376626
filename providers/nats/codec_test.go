package nats

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	natsio "github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/cewire"
)

func TestHeaderValueEscaping(t *testing.T) {
	for _, tc := range []struct{ name, in, wire string }{
		{"plain", "com.example.order", "com.example.order"},
		{"inner spaces and UTF-8 stay", "größe 42 €", "größe 42 €"},
		{"quote stays", `say "hi"`, `say "hi"`},
		{"percent", "100%", "100%25"},
		{"newline", "line1\nline2", "line1%0Aline2"},
		{"carriage return and tab", "a\r\tb", "a%0D%09b"},
		{"leading space", " x", "%20x"},
		{"DEL", "a\x7fb", "a%7Fb"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := encodeHeaderValue(tc.in)
			assert.Equal(t, tc.wire, got)
			back, err := decodeHeaderValue(got)
			require.NoError(t, err)
			assert.Equal(t, tc.in, back)
		})
	}
}

func TestDecodeHeaderValueLenient(t *testing.T) {
	// Writers that do not escape may send a bare '%'.
	for in, want := range map[string]string{"50% off": "50% off", "%zz": "%zz", "%4": "%4", "%41": "A"} {
		got, err := decodeHeaderValue(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := decodeHeaderValue("%FF%FE")
	assert.ErrorContains(t, err, "UTF-8")
}

func TestMsgIDScopesIDBySource(t *testing.T) {
	a := crossbus.NewEvent("t", "/a b")
	a.SetID("x")
	b := crossbus.NewEvent("t", "b")
	b.SetID("x /a")
	assert.NotEqual(t, MsgID(&a), MsgID(&b), "different (id, source) pairs never share a message id")
	c := a.Clone()
	assert.Equal(t, MsgID(&a), MsgID(&c))
	assert.Equal(t, "1:x"+a.Source(), MsgID(&a))
}

func TestDecodeMsgErrorsNameTheHeader(t *testing.T) {
	base := func() natsio.Header {
		return natsio.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}}
	}
	for _, tc := range []struct {
		name string
		mod  func(h natsio.Header)
		want string
	}{
		{"no CloudEvent", func(h natsio.Header) { clear(h); h["content-type"] = []string{"text/plain"} }, "not a CloudEvent"},
		{"missing id", func(h natsio.Header) { delete(h, "ce-id") }, "ce-id"},
		{"missing source", func(h natsio.Header) { delete(h, "ce-source") }, "ce-source"},
		{"missing type", func(h natsio.Header) { delete(h, "ce-type") }, "ce-type"},
		{"old spec version", func(h natsio.Header) { h["ce-specversion"] = []string{"0.3"} }, `"ce-specversion"`},
		{"bad time", func(h natsio.Header) { h["ce-time"] = []string{"yesterday"} }, `"ce-time"`},
		{"bad extension name", func(h natsio.Header) { h["ce-my-ext"] = []string{"v"} }, `"ce-my-ext"`},
		{"bad structured JSON", func(h natsio.Header) { clear(h); h["content-type"] = []string{"application/cloudevents+json"} }, "structured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := base()
			tc.mod(h)
			var e crossbus.Event
			err := DecodeMsg(h, []byte("{"), &e)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeMsgReadsStructuredMode(t *testing.T) {
	in := crossbus.NewEvent("com.example.x", "/src")
	require.NoError(t, crossbus.SetData(&in, map[string]int{"n": 1}))
	in.SetExtension("tenant", "acme")
	js, err := in.MarshalJSON()
	require.NoError(t, err)
	var out crossbus.Event
	require.NoError(t, DecodeMsg(natsio.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, js, &out))
	assert.Equal(t, in.ID(), out.ID())
	assert.Equal(t, "acme", crossbus.ExtensionString(&out, "tenant"))
	assert.JSONEq(t, `{"n":1}`, string(out.Data()))
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	in.SetSubject("orders/42 – größe\nnext line")
	in.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	in.SetDataSchema("https://example.com/schema.json")
	in.SetExtension("reason", "100% broken\r\n\tat main.go:1")
	in.SetExtension("priority", int32(7))
	require.NoError(t, crossbus.SetData(&in, []byte{0, 1, 2, 255}))
	msg, err := EncodeMsg("orders", &in)
	require.NoError(t, err)
	for k, vs := range msg.Header {
		for _, v := range vs {
			assert.False(t, strings.ContainsAny(v, "\r\n"), "header %s carries a line break", k)
		}
	}
	var out crossbus.Event
	require.NoError(t, DecodeMsg(msg.Header, msg.Data, &out))
	assert.Equal(t, in.Subject(), out.Subject())
	assert.Equal(t, "100% broken\r\n\tat main.go:1", crossbus.ExtensionString(&out, "reason"))
	assert.Equal(t, "7", crossbus.ExtensionString(&out, "priority"))
	assert.True(t, in.Time().Equal(out.Time()))
	assert.Equal(t, in.Data(), out.Data())
	assert.Equal(t, in.DataContentType(), out.DataContentType())
}

// FuzzDecodeMsg feeds arbitrary headers and payloads to the decoder: it must
// never panic, and whatever it accepts must survive a re-encode unchanged.
func FuzzDecodeMsg(f *testing.F) {
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-time: 2026-01-02T03:04:05.5Z\nce-tenant: a%20b", []byte("data"))
	f.Add("ce-specversion: 1.0\nce-id: %FF\nce-source: ::\nce-type: t", []byte{})
	f.Add("content-type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`))
	f.Add("CE-SPECVERSION: 1.0\nCe-Id: x\nce-source: /s\nce-type: t\ncontent-type: text/plain\nce-dataschema: http://x", []byte("hi"))
	f.Fuzz(func(t *testing.T, block string, data []byte) {
		h := natsio.Header{}
		for _, line := range strings.Split(block, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" {
				continue
			}
			h[k] = append(h[k], strings.TrimLeft(v, " "))
		}
		var e crossbus.Event
		if err := DecodeMsg(h, data, &e); err != nil {
			return
		}
		require.NotEmpty(t, e.ID())
		require.NotEmpty(t, e.Type())
		require.NotEmpty(t, e.Source())
		for name := range e.Extensions() {
			require.Equal(t, "", extensionProblem(name), name)
		}
		msg, err := EncodeMsg("s", &e)
		if err != nil {
			return // e.g. an extension value the SDK cannot format
		}
		var again crossbus.Event
		require.NoError(t, DecodeMsg(msg.Header, msg.Data, &again))
		require.Equal(t, e.ID(), again.ID())
		require.Equal(t, e.Source(), again.Source())
		require.Equal(t, e.Type(), again.Type())
		require.Equal(t, e.Subject(), again.Subject())
		require.Equal(t, e.DataContentType(), again.DataContentType())
		require.True(t, e.Time().Equal(again.Time()))
		require.True(t, bytes.Equal(e.Data(), again.Data()))
		for name := range e.Extensions() {
			require.Equal(t, crossbus.ExtensionString(&e, name), crossbus.ExtensionString(&again, name), name)
		}
	})
}

// FuzzHeaderValue checks that every UTF-8 value survives the header escaping
// and never puts a line break on the wire.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"", "a", " leading space", "100%", "a\r\nb", "€", "%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		w := encodeHeaderValue(s)
		require.False(t, strings.ContainsAny(w, "\r\n"))
		require.False(t, strings.HasPrefix(w, " "))
		back, err := decodeHeaderValue(w)
		require.NoError(t, err)
		require.Equal(t, s, back)
	})
}

func extensionProblem(name string) string {
	if !cewire.ValidExtensionName(name) {
		return "invalid"
	}
	return ""
}
