package eventpattern

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// The fast path for exact strings on one attribute decides as the document
// does, for present, absent and empty attributes.
func TestFastPathAgreesWithTheDocument(t *testing.T) {
	mk := func(typ, subject, ct string) *event.Event {
		e := event.New()
		e.SetID("1")
		e.SetSource("/s")
		e.SetType(typ)
		if subject != "" {
			e.SetSubject(subject)
		}
		if ct != "" {
			e.SetDataContentType(ct)
		}
		return &e
	}
	events := []*event.Event{mk("a", "", ""), mk("b", "x", "application/json"), mk("", "y", ""), mk("c", "", "text/plain")}
	for _, src := range []string{`{"type":["a"]}`, `{"type":["a","b","c","d","e","f","g","h","i","j","k"]}`, `{"subject":["x"]}`,
		`{"datacontenttype":["application/json"]}`, `{"id":["1"]}`, `{"id":["2"]}`} {
		p := MustCompile(src)
		if p.fast == nil {
			t.Fatalf("%s: no fast path", src)
		}
		slow := &Pattern{root: p.root, src: p.src}
		for i, e := range events {
			if got, want := p.Match(e), slow.Match(e); got != want {
				t.Errorf("%s on event %d: fast %v, document %v", src, i, got, want)
			}
		}
	}
	if MustCompile(`{"type":[{"prefix":"a"}]}`).fast != nil || MustCompile(`{"type":["a"],"source":["/s"]}`).fast != nil {
		t.Error("fast path taken for a pattern it does not cover")
	}
}
