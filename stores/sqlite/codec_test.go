package sqlite

import (
	"bytes"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
)

// FuzzDecodeRecord feeds arbitrary bytes to the decoder of stored event
// bodies (a damaged file): it must return an error or an event, never panic.
func FuzzDecodeRecord(f *testing.F) {
	e := crossbus.NewEvent("t", "https://example.com/s")
	e.SetSubject("sub")
	e.SetExtension("ext", "v")
	e.SetExtension("n", 5)
	_ = crossbus.SetData(&e, map[string]int{"a": 1})
	part, err := encodeEvent(nil, &e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeRecord("stream", 3, 9, 42, part))
	f.Add([]byte{recordFormat})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decoder
		var blk eventBlock
		_, _ = d.decodeRecord(body, &blk)
		_, _ = d.decodeEvent(body)
		_, _ = recordHeader(body)
	})
}

// FuzzEventRoundTrip checks that whatever valid event goes in comes out.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add("id-1", "https://example.com/src?x=1", "com.example.t", "subj", "text/plain", []byte("data"), "ext", "value", int64(1700000000123456789))
	f.Add("x", "urn:a", "t", "", "", []byte{}, "", "", int64(0))
	f.Fuzz(func(t *testing.T, id, source, typ, subject, ct string, data []byte, extName, extVal string, nanos int64) {
		e := crossbus.NewEvent(typ, source)
		e.SetID(id)
		if subject != "" {
			e.SetSubject(subject)
		}
		if ct != "" {
			e.SetDataContentType(ct)
		}
		if nanos != 0 {
			e.SetTime(time.Unix(0, nanos))
		}
		if extName != "" {
			e.SetExtension(extName, extVal) // invalid names are refused by the SDK (recorded in FieldErrors)
		}
		e.DataEncoded = data
		if crossbus.Validate(&e) != nil {
			return
		}
		part, err := encodeEvent(nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		var d decoder
		var blk eventBlock
		rec, err := d.decodeRecord(encodeRecord("s", 7, 11, 99, part), &blk)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		got := rec.Event
		if rec.Stream != "s" || rec.Version != 7 || rec.Position != 11 || rec.Recorded.UnixNano() != 99 {
			t.Fatalf("header: %+v", rec)
		}
		if got.ID() != e.ID() || got.Source() != e.Source() || got.Type() != e.Type() || got.Subject() != e.Subject() ||
			got.DataContentType() != e.DataContentType() || !got.Time().Equal(e.Time()) || !bytes.Equal(got.Data(), e.Data()) {
			t.Fatalf("round trip changed the event:\n in: %v\nout: %v", e, got)
		}
		for k, v := range e.Extensions() {
			if crossbus.ExtensionString(got, k) != crossbus.ExtensionString(&e, k) {
				t.Fatalf("extension %q: %v became %v", k, v, got.Extensions()[k])
			}
		}
	})
}
