package crossbus

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// sourceOf is e.Source() for every kind of source, plain paths or not.
func TestSourceOfIsTheSourceText(t *testing.T) {
	for _, src := range []string{
		"/shop/orders", "/", "/a-b_c.d~e/f!$&'()*+,;=@g", "/with space", "/m%C3%BCnchen", "/münchen",
		"//host/path", "/a?b=c", "/a#frag", "https://example.com/x", "urn:example:1", "mailto:x@example.com",
		"relative/path", "/a\"b", "/a<b>", "/a:b", "./x", "",
	} {
		e := NewEvent("t", src)
		assert.Equal(t, e.Source(), sourceOf(&e), "source %q", src)
	}
	var e Event
	assert.Equal(t, "", sourceOf(&e), "an event without a context")
}

func BenchmarkSourceOf(b *testing.B) {
	e := NewEvent("t", "/shop/orders")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if sourceOf(&e) == "" {
			b.Fatal("empty")
		}
	}
}

func BenchmarkNewEvent(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e := NewEvent("com.example.order.placed", "/orders")
		if e.Context == nil {
			b.Fatal("no context")
		}
	}
}
