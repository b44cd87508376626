package nats

import (
	"bytes"
	"net/textproto"
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

func TestVerbatimHeaderValues(t *testing.T) {
	// Values the SDK's bindings write and read as they are travel as they
	// are: nothing is escaped, nothing is decoded.
	for _, v := range []string{"com.example.order", "/sources/m%C3%BCnchen", "100%", "%41", "größe 42 €", `say "hi"`, ""} {
		assert.True(t, verbatimOK(v), "%q", v)
	}
	in := crossbus.NewEvent("com.example.t", "/sources/m%C3%BCnchen")
	in.SetSubject("größe 42 € – 100%")
	in.SetExtension("code", "%41")
	msg, err := EncodeMsg("s", &in)
	require.NoError(t, err)
	assert.Equal(t, "/sources/m%C3%BCnchen", msg.Header.Get("ce-source"))
	assert.Equal(t, "größe 42 € – 100%", msg.Header.Get("ce-subject"))
	assert.Equal(t, "%41", msg.Header.Get("ce-code"))
	var out crossbus.Event
	require.NoError(t, DecodeMsg(msg.Header, msg.Data, &out))
	assert.Equal(t, "/sources/m%C3%BCnchen", out.Source())
	assert.Equal(t, "%41", crossbus.ExtensionString(&out, "code"), "a literal %41 is not decoded")
	assert.Equal(t, in.Subject(), out.Subject())
}

func TestVerbatimFallsBackToStructuredForValuesAHeaderCannotCarry(t *testing.T) {
	for name, v := range map[string]string{"newline": "line1\nline2", "carriage return and tab": "a\r\tb",
		"leading space": " x", "trailing space": "x ", "DEL": "a\x7fb", "NUL": "a\x00b"} {
		t.Run(name, func(t *testing.T) {
			assert.False(t, verbatimOK(v))
			in := crossbus.NewEvent("com.example.t", "/s")
			in.SetExtension("reason", v)
			require.NoError(t, crossbus.SetData(&in, []byte{0, 1, 2, 255}))
			msg, err := EncodeMsg("s", &in)
			require.NoError(t, err)
			assert.Equal(t, natsio.Header{"content-type": {"application/cloudevents+json; charset=utf-8"}, "Nats-Msg-Id": {MsgID(&in)}}, msg.Header,
				"structured mode: no ce- headers")
			var out crossbus.Event
			require.NoError(t, DecodeMsg(msg.Header, msg.Data, &out))
			assert.Equal(t, v, crossbus.ExtensionString(&out, "reason"))
			assert.Equal(t, []byte{0, 1, 2, 255}, out.Data())
			assert.Equal(t, in.ID(), out.ID())
		})
	}
}

func TestPercentHeaderValues(t *testing.T) {
	for _, tc := range []struct{ name, in, wire string }{
		{"plain", "com.example.order", "com.example.order"},
		{"spec example", "Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"},
		{"percent", "100%", "100%25"},
		{"quote", `say "hi"`, "say%20%22hi%22"},
		{"newline", "line1\nline2", "line1%0Aline2"},
		{"leading and trailing space", " x ", "%20x%20"},
		{"DEL", "a\x7fb", "a%7Fb"},
		{"encoded URI", "/sources/m%C3%BCnchen", "/sources/m%25C3%25BCnchen"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := percentEncode(tc.in)
			assert.Equal(t, tc.wire, got)
			back, err := percentDecode(got)
			require.NoError(t, err)
			assert.Equal(t, tc.in, back)
		})
	}
	// Readers accept what the draft says they must.
	for in, want := range map[string]string{
		"%e2%82%ac":        "€",            // lower-case hex
		"%41":              "A",            // unnecessarily encoded
		`"say \"hi\" now"`: `say "hi" now`, // a double-quoted value of older writers
		`"a%20b"`:          "a b",          // unquoted, then decoded
		"50% off":          "50% off",      // a '%' without two hex digits stays
		"%zz":              "%zz",
		"%4":               "%4",
	} {
		got, err := percentDecode(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"%C0%A0", "%FF%FE"} { // overlong space; not UTF-8
		_, err := percentDecode(in)
		assert.ErrorContains(t, err, "UTF-8", in)
	}

	c := Codec{HeaderValues: HeaderValuesPercent}
	in := crossbus.NewEvent("com.example.t", "/sources/m%C3%BCnchen")
	in.SetSubject("line1\nline2")
	msg, err := c.Encode("s", &in)
	require.NoError(t, err)
	assert.Equal(t, "/sources/m%25C3%25BCnchen", msg.Header.Get("ce-source"))
	assert.Equal(t, "line1%0Aline2", msg.Header.Get("ce-subject"), "percent mode never needs structured mode")
	var out crossbus.Event
	require.NoError(t, c.Decode(msg.Header, msg.Data, &out))
	assert.Equal(t, "/sources/m%C3%BCnchen", out.Source())
	assert.Equal(t, "line1\nline2", out.Subject())
	require.NoError(t, DecodeMsg(msg.Header, msg.Data, &out))
	assert.Equal(t, "/sources/m%25C3%25BCnchen", out.Source(), "a verbatim reader sees the escapes")
}

func TestEscapeMsgID(t *testing.T) {
	for in, want := range map[string]string{"1:x/s": "1:x/s", "1:%/s": "1:%25/s", " a ": "%20a%20", "a b": "a b", "a\nb": "a%0Ab"} {
		assert.Equal(t, want, escapeMsgID(in), in)
	}
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
		{"no headers, not JSON", func(h natsio.Header) { clear(h) }, "structured"},
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
	for name, h := range map[string]natsio.Header{
		"content-type":                    {"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
		"no headers (NATS binding 1.0.2)": nil,
		"only a message id":               {"Nats-Msg-Id": {"x"}},
	} {
		t.Run(name, func(t *testing.T) {
			var out crossbus.Event
			require.NoError(t, DecodeMsg(h, js, &out))
			assert.Equal(t, in.ID(), out.ID())
			assert.Equal(t, "acme", crossbus.ExtensionString(&out, "tenant"))
			assert.JSONEq(t, `{"n":1}`, string(out.Data()))
		})
	}
	var out crossbus.Event
	err = DecodeMsg(nil, []byte("hello"), &out)
	require.ErrorIs(t, err, errNotCloudEvent, "a plain message is not a CloudEvent")
	err = DecodeMsg(natsio.Header{"content-type": {"application/json"}}, js, &out)
	require.ErrorIs(t, err, errNotCloudEvent, "a JSON payload with another content type is data, not an event")
	require.Error(t, DecodeMsg(nil, []byte(`{"hello":"world"}`), &out), "a JSON object that is not an event")
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
		for _, c := range []Codec{{}, {HeaderValues: HeaderValuesPercent}} {
			fuzzRoundTrip(t, c, h, data)
		}
	})
}

func fuzzRoundTrip(t *testing.T, c Codec, h natsio.Header, data []byte) {
	var e crossbus.Event
	if err := c.Decode(h, data, &e); err != nil {
		return
	}
	require.NotEmpty(t, e.ID())
	require.NotEmpty(t, e.Type())
	require.NotEmpty(t, e.Source())
	for name := range e.Extensions() {
		require.Equal(t, "", extensionProblem(name), name)
	}
	msg, err := c.Encode("s", &e)
	if err != nil {
		return // e.g. an extension value the SDK cannot format
	}
	var again crossbus.Event
	require.NoError(t, c.Decode(msg.Header, msg.Data, &again))
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
}

// FuzzHeaderValue checks both policies: every UTF-8 value survives
// percent-encoding and never puts a line break or a leading or trailing
// space on the wire, and a value verbatimOK accepts is one a NATS client
// sends unchanged.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"", "a", " leading space", "trailing ", "100%", "a\r\nb", "€", "%41", `"q"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		w := percentEncode(s)
		require.False(t, strings.ContainsAny(w, "\r\n \t\""))
		back, err := percentDecode(w)
		require.NoError(t, err)
		require.Equal(t, s, back)
		if verbatimOK(s) {
			require.Equal(t, s, textproto.TrimString(s))
			require.False(t, strings.ContainsAny(s, "\r\n"))
		}
	})
}

func extensionProblem(name string) string {
	if !cewire.ValidExtensionName(name) {
		return "invalid"
	}
	return ""
}
