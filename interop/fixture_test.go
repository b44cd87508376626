package interop_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

// fixtureTime has nanoseconds and an offset other than UTC, so that the
// tests see what each wire does with both.
var fixtureTime = time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))

// fixture is one event the tests send in every direction.
type fixture struct {
	name string
	ev   crossbus.Event
}

// fixtures are the events every transport carries: every context attribute
// (with non-ASCII and '%' in values), an extension of every CloudEvents
// type, binary and text data, 100 KB of data, and no data.
func fixtures(t testing.TB) []fixture {
	t.Helper()
	attrs := crossbus.NewEvent("com.example.order.placed", "https://example.com/sources/m%C3%BCnchen")
	attrs.SetID("attrs-1")
	attrs.SetSubject("größe 42 – 100% €")
	attrs.SetTime(fixtureTime)
	attrs.SetDataSchema("https://example.com/schemas/order.json")
	require.NoError(t, crossbus.SetData(&attrs, map[string]any{"id": 42, "name": "Müller"}))

	ext := crossbus.NewEvent("com.example.extensions", "/sources/ext")
	ext.SetID("ext-1")
	link, err := url.Parse("https://example.com/a?b=c%20d#e")
	require.NoError(t, err)
	ext.SetExtension("flag", true)
	ext.SetExtension("count", int32(42))
	ext.SetExtension("delta", int32(-7))
	ext.SetExtension("tenant", "acme")
	ext.SetExtension("note", "100% m%C3%BC €")
	ext.SetExtension("blob", []byte{0, 1, 2, 254, 255})
	ext.SetExtension("link", types.URI{URL: *link})
	ext.SetExtension("ref", *types.ParseURIRef("../relative/path?x=%41"))
	ext.SetExtension("at", types.Timestamp{Time: fixtureTime})
	require.NoError(t, crossbus.SetData(&ext, "extensions"))

	bin := crossbus.NewEvent("com.example.binary", "/sources/bin")
	bin.SetID("bin-1")
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	require.NoError(t, crossbus.SetData(&bin, all))

	text := crossbus.NewEvent("com.example.text", "/sources/text")
	text.SetID("text-1")
	text.SetDataContentType("text/plain; charset=utf-8")
	require.NoError(t, crossbus.SetData(&text, "grüße, 100%\n"))

	large := crossbus.NewEvent("com.example.large", "/sources/large")
	large.SetID("large-1")
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i*7 + i>>8)
	}
	require.NoError(t, crossbus.SetData(&large, big))

	none := crossbus.NewEvent("com.example.nodata", "/sources/none")
	none.SetID("none-1")

	out := []fixture{{"attributes", attrs}, {"extensions", ext}, {"binary data", bin}, {"text data", text},
		{"100 KB data", large}, {"no data", none}}
	for i := 1; i < len(out); i++ {
		out[i].ev.SetTime(fixtureTime.Add(time.Duration(i) * time.Second)) // NewEvent set the current time
	}
	return out
}

// fixtureByID returns the fixture with id.
func fixtureByID(t testing.TB, id string) fixture {
	t.Helper()
	for _, f := range fixtures(t) {
		if f.ev.ID() == id {
			return f
		}
	}
	t.Fatalf("no fixture has id %q", id)
	return fixture{}
}

// typeName is the CloudEvents type of an extension value as a reader holds
// it.
func typeName(v any) string {
	switch v.(type) {
	case bool:
		return "Boolean"
	case int32:
		return "Integer"
	case string:
		return "String"
	case []byte:
		return "Binary"
	case types.URI:
		return "URI"
	case types.URIRef:
		return "URI-reference"
	case types.Timestamp:
		return "Timestamp"
	}
	return "?"
}

// extensionTypes lists the extensions' types as "name:Type", sorted.
func extensionTypes(e *crossbus.Event) string {
	var out []string
	for name, v := range e.Extensions() {
		out = append(out, name+":"+typeName(v))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// allStrings is what extensionTypes says of the extensions fixture after a
// wire that carries every value as text.
const allStrings = "at:String blob:String count:String delta:String flag:String link:String note:String ref:String tenant:String"

// expect says how a received event may differ from the one sent.
type expect struct {
	// timeUnit is the precision of time and Timestamp values on the wire
	// (0: exact).
	timeUnit time.Duration
	// limits are values a writer or reader is known to get wrong, by
	// attribute or extension name, with why: the test checks that they
	// still differ, so that a fixed SDK shows up.
	limits map[string]string
	// types, when set, is what extensionTypes must say of the extensions
	// fixture.
	types string
	// jsonData compares JSON data as JSON (a structured-mode reader may
	// re-indent it).
	jsonData bool
	// added are extensions the reader adds of its own.
	added []string
}

// assertSame checks got against the fixture it claims to be (by id):
// every attribute, every extension by its canonical string, and the data
// byte for byte, except what x allows.
func assertSame(t *testing.T, got *crossbus.Event, x expect) {
	t.Helper()
	f := fixtureByID(t, got.ID())
	want := &f.ev
	limited := func(name string, equal bool, detail string) {
		t.Helper()
		if why, ok := x.limits[name]; ok {
			assert.False(t, equal, "%s: %s is listed as a known limitation (%s) but arrived intact: update the matrix", f.name, name, why)
			return
		}
		assert.True(t, equal, "%s: %s differs: %s", f.name, name, detail)
	}
	limited("id", want.ID() == got.ID(), got.ID())
	limited("source", want.Source() == got.Source(), got.Source())
	limited("type", want.Type() == got.Type(), got.Type())
	limited("subject", want.Subject() == got.Subject(), got.Subject())
	limited("dataschema", want.DataSchema() == got.DataSchema(), got.DataSchema())
	limited("datacontenttype", want.DataContentType() == got.DataContentType(), "got "+got.DataContentType()+", want "+want.DataContentType())
	limited("time", sameTime(want.Time(), got.Time(), x.timeUnit), got.Time().String())
	limited("data", sameData(want, got, x.jsonData), "data of "+want.DataContentType())
	wantExt, gotExt := want.Extensions(), got.Extensions()
	for name, wv := range wantExt {
		gv, ok := gotExt[name]
		limited(name, ok && sameValue(wv, gv, x.timeUnit), formatAny(gv))
	}
	for name := range gotExt {
		_, ok := wantExt[name]
		assert.True(t, ok || slices.Contains(x.added, name), "%s: extension %s was not sent", f.name, name)
	}
	if x.types != "" && f.name == "extensions" {
		c := got.Clone()
		for _, name := range x.added {
			c.SetExtension(name, nil)
		}
		assert.Equal(t, x.types, extensionTypes(&c), "extension types after the wire")
	}
}

func sameTime(a, b time.Time, unit time.Duration) bool {
	if unit > 0 {
		a, b = a.Truncate(unit), b.Truncate(unit)
	}
	return a.Equal(b)
}

func sameData(want, got *crossbus.Event, asJSON bool) bool {
	if asJSON && len(want.Data()) > 0 && strings.Contains(want.DataContentType(), "json") {
		var a, b any
		return json.Unmarshal(want.Data(), &a) == nil && json.Unmarshal(got.Data(), &b) == nil && assert.ObjectsAreEqual(a, b)
	}
	return bytes.Equal(want.Data(), got.Data())
}

// sameValue compares two extension values by their canonical strings
// (timestamps as instants, to the wire's precision).
func sameValue(want, got any, unit time.Duration) bool {
	if wt, ok := want.(types.Timestamp); ok {
		gt, err := types.ToTime(got)
		return err == nil && sameTime(wt.Time, gt, unit)
	}
	return formatAny(want) == formatAny(got)
}

func formatAny(v any) string {
	s, err := types.Format(v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

// sdkEvent is the fixture as the SDK holds it before sending: a copy, so
// that a writer cannot change the fixture.
func sdkEvent(f fixture) event.Event {
	return f.ev.Clone()
}

func TestFixturesAreValid(t *testing.T) {
	for _, f := range fixtures(t) {
		require.NoError(t, f.ev.Validate(), f.name)
		assertSame(t, &f.ev, expect{})
	}
	ext := fixtureByID(t, "ext-1").ev
	assert.Equal(t, "at:Timestamp blob:Binary count:Integer delta:Integer flag:Boolean link:URI note:String ref:URI-reference tenant:String", extensionTypes(&ext))
}
