package eventcodec

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

func sample() *crossbus.Event {
	e := crossbus.NewEvent("order.placed", "https://example.com/shop")
	e.SetSubject("order-1")
	e.SetTime(time.Unix(1700000000, 123).UTC())
	e.SetExtension("tenant", "t1")
	e.SetExtension("n", 5)
	e.SetExtension("flag", true)
	_ = crossbus.SetData(&e, map[string]int{"a": 1})
	return &e
}

func TestRoundTrip(t *testing.T) {
	e := sample()
	b, err := Append(nil, e)
	require.NoError(t, err)
	var d Decoder
	got, err := d.Decode(b)
	require.NoError(t, err)
	assert.Equal(t, e.ID(), got.ID())
	assert.Equal(t, e.Source(), got.Source())
	assert.Equal(t, e.Type(), got.Type())
	assert.Equal(t, e.Subject(), got.Subject())
	assert.True(t, e.Time().Equal(got.Time()))
	assert.Equal(t, e.Extensions(), got.Extensions())
	assert.JSONEq(t, string(e.Data()), string(got.Data()))
}

// FuzzDecode feeds arbitrary bytes to the decoder (a damaged row): it must
// return an error or an event, never panic.
func FuzzDecode(f *testing.F) {
	b, err := Append(nil, sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var d Decoder
		_, _ = d.Decode(body)
	})
}
