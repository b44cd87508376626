package eventpattern

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestEvent(t *testing.T) *event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("id-1")
	ev.SetSource("/orders/eu-west")
	ev.SetType("com.example.order.created")
	ev.SetSubject("order-42")
	ev.SetTime(time.Date(2025, 3, 4, 5, 6, 7, 800_000_000, time.FixedZone("CET", 3600)))
	ev.SetDataSchema("https://schemas.example.com/order.json")
	ev.SetExtension("partitionkey", "customer-7")
	ev.SetExtension("sequence", 42)
	ev.SetExtension("sampled", true)
	require.NoError(t, ev.SetData(event.ApplicationJSON, map[string]any{
		"amount": 120.5, "currency": "EUR", "tags": []string{"vip", "b2b"},
		"customer": map[string]any{"tier": "gold"},
	}))
	require.NoError(t, ev.Validate())
	return &ev
}

func TestEventAttributes(t *testing.T) {
	ev := newTestEvent(t)
	cases := []struct {
		name    string
		pattern string
		want    bool
	}{
		{"specversion", `{"specversion":["1.0"]}`, true},
		{"id", `{"id":["id-1"]}`, true},
		{"source", `{"source":["/orders/eu-west"]}`, true},
		{"source prefix", `{"source":[{"prefix":"/orders/"}]}`, true},
		{"type", `{"type":["com.example.order.created"]}`, true},
		{"type miss", `{"type":["com.example.order.deleted"]}`, false},
		{"subject", `{"subject":["order-42"]}`, true},
		{"time in UTC", `{"time":["2025-03-04T04:06:07.8Z"]}`, true},
		{"time prefix", `{"time":[{"prefix":"2025-03-04T04"}]}`, true},
		{"datacontenttype", `{"datacontenttype":["application/json"]}`, true},
		{"dataschema", `{"dataschema":["https://schemas.example.com/order.json"]}`, true},
		{"string extension", `{"partitionkey":["customer-7"]}`, true},
		{"integer extension is a number", `{"sequence":[{"numeric":[">",40]}]}`, true},
		{"integer extension is not a string", `{"sequence":["42"]}`, false},
		{"boolean extension", `{"sampled":[true]}`, true},
		{"missing extension", `{"traceparent":[{"exists":false}]}`, true},
		{"missing extension value", `{"traceparent":["x"]}`, false},
		{"data field", `{"data":{"amount":[{"numeric":[">",100]}]}}`, true},
		{"data array", `{"data":{"tags":["vip"]}}`, true},
		{"data nested", `{"data":{"customer":{"tier":["gold"]}}}`, true},
		{"data nested miss", `{"data":{"customer":{"tier":["silver"]}}}`, false},
		{"data is not a leaf", `{"data":[{"exists":false}]}`, true},
		{"all together", `{"type":["com.example.order.created"],"source":[{"prefix":"/orders"}],"data":{"currency":["EUR"]},"sequence":[42]}`, true},
	}
	var d Doc
	d.Reset(ev)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := MustCompile(tc.pattern)
			assert.Equal(t, tc.want, p.Match(ev), "Match")
			assert.Equal(t, tc.want, p.MatchDoc(&d), "MatchDoc on a shared Doc")

			// The structured JSON form the SDK writes gives the same answer.
			b, err := json.Marshal(ev)
			require.NoError(t, err)
			got, err := p.MatchJSON(b)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "MatchJSON of %s", b)
		})
	}
}

func TestEventDataContentTypes(t *testing.T) {
	cases := []struct {
		name    string
		ct      string
		data    []byte
		pattern string
		want    bool
	}{
		{"json", "application/json", []byte(`{"a":1}`), `{"data":{"a":[1]}}`, true},
		{"json with parameters", "Application/JSON; charset=utf-8", []byte(`{"a":1}`), `{"data":{"a":[1]}}`, true},
		{"+json suffix", "application/vnd.example+json", []byte(`{"a":1}`), `{"data":{"a":[1]}}`, true},
		{"text/json", "text/json", []byte(`{"a":1}`), `{"data":{"a":[1]}}`, true},
		{"no content type, JSON data", "", []byte(`{"a":1}`), `{"data":{"a":[1]}}`, true},
		{"no content type, JSON scalar", "", []byte(`"hello"`), `{"data":["hello"]}`, true},
		{"no content type, not JSON", "", []byte(`hello`), `{"data":[{"exists":false}]}`, true},
		{"invalid JSON is absent", "application/json", []byte(`{"a":`), `{"data":[{"exists":false}]}`, true},
		{"text is a string", "text/plain", []byte(`hello world`), `{"data":[{"prefix":"hello"}]}`, true},
		{"xml is a string", "application/xml", []byte(`<a/>`), `{"data":["<a/>"]}`, true},
		{"text that is JSON stays a string", "text/plain", []byte(`{"a":1}`), `{"data":{"a":[1]}}`, false},
		{"binary is absent", "application/octet-stream", []byte{0, 1, 2}, `{"data":[{"exists":false}]}`, true},
		{"binary text is absent", "application/octet-stream", []byte(`abc`), `{"data":[{"exists":true}]}`, false},
		{"invalid utf-8 text is absent", "text/plain", []byte{0xff, 0xfe}, `{"data":[{"exists":false}]}`, true},
		{"no data", "application/json", nil, `{"data":[{"exists":false}]}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := event.New()
			ev.SetID("1")
			ev.SetSource("/s")
			ev.SetType("t")
			if tc.ct != "" {
				ev.SetDataContentType(tc.ct)
			}
			ev.DataEncoded = tc.data
			assert.Equal(t, tc.want, MustCompile(tc.pattern).Match(&ev))
		})
	}
}

func TestEventExtensionTypes(t *testing.T) {
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("/s")
	ev.SetType("t")
	ev.SetExtension("bin", []byte("hi"))
	ev.SetExtension("uri", types.URI{URL: url.URL{Scheme: "https", Host: "example.com", Path: "/x"}})
	ev.SetExtension("ts", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	assert.True(t, MustCompile(`{"bin":["aGk="]}`).Match(&ev), "binary extensions are base64 strings")
	assert.True(t, MustCompile(`{"uri":["https://example.com/x"]}`).Match(&ev))
	assert.True(t, MustCompile(`{"ts":["2024-01-02T03:04:05Z"]}`).Match(&ev))
	assert.False(t, MustCompile(`{"type":["t"]}`).Match(nil), "a nil event matches nothing")
}

func TestEventLegacySpecVersion(t *testing.T) {
	ev := event.New(event.CloudEventsVersionV03)
	ev.SetID("1")
	ev.SetSource("https://example.com/src")
	ev.SetType("t")
	ev.SetSubject("sub")
	ev.SetExtension("ext", "v")
	assert.True(t, MustCompile(`{"specversion":["0.3"],"source":["https://example.com/src"],"subject":["sub"],"ext":["v"]}`).Match(&ev))
}

func TestURIFormattingMatchesURLString(t *testing.T) {
	raw := []string{
		"/orders/eu-west", "orders", "a:b/c", "./a:b", "https://example.com", "https://example.com/a/b",
		"https://example.com:8443/a", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "mailto:a@example.com",
		"//host/path", "https://user@example.com/x", "https://example.com/a?b=c", "https://example.com/#f",
		"/a%20b", "/a b", "https://[::1]:80/x", "file:///etc/hosts", "", "https:", "/é", "*", "a/b:c",
	}
	for _, s := range raw {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		var d Doc
		d.Reset(&event.Event{})
		ref := d.uri(u)
		want := u.String()
		if want == "" {
			assert.Equal(t, refMissing, ref, "%q", s)
			continue
		}
		require.GreaterOrEqual(t, ref, int32(0), "%q", s)
		assert.Equal(t, want, d.t.nodes[ref].s, "%q", s)
	}
}

func TestDocReuseDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	ev := newTestEvent(t)
	p := MustCompile(`{"type":["com.example.order.created"],"source":[{"prefix":"/orders/"}],"time":[{"exists":true}],"sequence":[42],"data":{"customer":{"tier":["gold"]}}}`)
	var d Doc
	allocs := testing.AllocsPerRun(200, func() {
		d.Reset(ev)
		if !p.MatchDoc(&d) {
			t.Fatal("no match")
		}
	})
	assert.Zero(t, allocs)
	allocs = testing.AllocsPerRun(200, func() {
		if !p.Match(ev) {
			t.Fatal("no match")
		}
	})
	assert.Zero(t, allocs)
}

func TestDocResetJSON(t *testing.T) {
	var d Doc
	require.NoError(t, d.ResetJSON([]byte(`{"type":"a","data":{"x":[1,2]}}`)))
	assert.True(t, MustCompile(`{"data":{"x":[2]}}`).MatchDoc(&d))
	require.NoError(t, d.ResetJSON([]byte(`{"type":"b"}`)))
	assert.False(t, MustCompile(`{"type":["a"]}`).MatchDoc(&d), "a reset Doc forgets the previous event")
	assert.True(t, MustCompile(`{"type":["b"]}`).MatchDoc(&d))
}
