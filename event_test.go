package crossbus_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

func TestNewEventFillsRequiredAttributes(t *testing.T) {
	a := crossbus.NewEvent("com.example.a", "/src")
	b := crossbus.NewEvent("com.example.a", "/src")
	assert.Equal(t, "1.0", a.SpecVersion())
	assert.NotEmpty(t, a.ID())
	assert.NotEqual(t, a.ID(), b.ID())
	assert.Less(t, a.ID(), b.ID(), "UUIDv7 ids sort by creation time")
	assert.False(t, a.Time().IsZero())
	assert.NoError(t, crossbus.Validate(&a))
}

func TestValidateNamesEveryProblem(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(e *crossbus.Event)
		wants []string
	}{
		{"missing id source type", func(e *crossbus.Event) {
			v := e.Context.AsV1()
			v.ID, v.Type = "", ""
			v.Source.URL = url.URL{}
			e.Context = v
		}, []string{"id: missing", "source: missing", "type: missing"}},
		{"bad content type", func(e *crossbus.Event) { e.SetDataContentType("not a media type") }, []string{"datacontenttype"}},
		{"empty subject", func(e *crossbus.Event) {
			v := e.Context.AsV1()
			blank := " "
			v.Subject = &blank
			e.Context = v
		}, []string{"subject: present but empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := crossbus.NewEvent("com.example.a", "/src")
			tc.mod(&e)
			err := crossbus.Validate(&e)
			require.Error(t, err)
			assert.ErrorIs(t, err, crossbus.ErrInvalidEvent)
			var ve *crossbus.ValidationError
			require.ErrorAs(t, err, &ve)
			for _, w := range tc.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestValidateExtensionNames(t *testing.T) {
	e := crossbus.NewEvent("com.example.a", "/src")
	// The SDK lower-cases names on SetExtension; events decoded elsewhere
	// may still carry bad ones, so put one in directly.
	raw := e.Context.AsV1()
	raw.Extensions = map[string]any{"Bad_Name": "v", "good": "w"}
	e.Context = raw
	err := crossbus.Validate(&e)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `extension "Bad_Name"`)
	assert.Contains(t, err.Error(), "position 0")
	assert.NotContains(t, err.Error(), `"good"`)
}

func TestValidateWrongSpecVersion(t *testing.T) {
	e := crossbus.NewEvent("com.example.a", "/src")
	e.SetSpecVersion("0.3")
	err := crossbus.Validate(&e)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "specversion")
	var empty crossbus.Event
	assert.ErrorContains(t, crossbus.Validate(&empty), "specversion")
}

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

func TestTypedDataRoundTrip(t *testing.T) {
	e := crossbus.NewEvent("com.example.order", "/shop")
	require.NoError(t, crossbus.SetData(&e, order{ID: "o1", Total: 42}))
	assert.Equal(t, "application/json", e.DataContentType())
	got, err := crossbus.DataAs[order](&e)
	require.NoError(t, err)
	assert.Equal(t, order{ID: "o1", Total: 42}, got)

	raw := crossbus.NewEvent("com.example.blob", "/b")
	require.NoError(t, crossbus.SetData(&raw, []byte{0, 1, 2}))
	assert.Equal(t, "application/octet-stream", raw.DataContentType())
	b, err := crossbus.DataAs[[]byte](&raw)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 2}, b)
}

func TestDataAsFailureIsPermanent(t *testing.T) {
	e := crossbus.NewEvent("com.example.order", "/shop")
	e.SetDataContentType("application/json")
	e.DataEncoded = []byte(`{"total":"many"}`)
	_, err := crossbus.DataAs[order](&e)
	require.Error(t, err)
	assert.ErrorIs(t, err, crossbus.ErrInvalidData)
	assert.True(t, crossbus.IsPermanent(err))
	var de *crossbus.DataError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, e.ID(), de.EventID)

	x := crossbus.NewEvent("com.example.order", "/shop")
	require.NoError(t, crossbus.SetData(&x, "plain text"))
	_, err = crossbus.DataAs[order](&x)
	assert.ErrorContains(t, err, "text/plain")

	none := crossbus.NewEvent("com.example.order", "/shop")
	_, err = crossbus.DataAs[order](&none)
	assert.ErrorContains(t, err, "no data")
}

func TestEncodedSizeCountsDataAndAttributes(t *testing.T) {
	e := crossbus.NewEvent("com.example.a", "/src")
	base := driver.EncodedSize(&e)
	assert.Greater(t, base, len(e.ID())+len("com.example.a"))
	require.NoError(t, crossbus.SetData(&e, strings.Repeat("x", 1000)))
	assert.GreaterOrEqual(t, driver.EncodedSize(&e), base+1000)
	e.SetExtension("tenant", "acme")
	assert.GreaterOrEqual(t, driver.EncodedSize(&e), base+1000+len("tenant")+len("acme"))
}

func TestPermanent(t *testing.T) {
	assert.Nil(t, crossbus.Permanent(nil))
	base := errors.New("boom")
	p := crossbus.Permanent(base)
	assert.True(t, crossbus.IsPermanent(p))
	assert.ErrorIs(t, p, base)
	assert.False(t, crossbus.IsPermanent(base))
	assert.True(t, crossbus.IsPermanent(errors.Join(errors.New("x"), p)))
}

func TestDeadLetterEventRoundTrip(t *testing.T) {
	e := crossbus.NewEvent("com.example.a", "/src")
	dl := driver.DeadLetterEvent(&e, crossbus.DeadLetterInfo{Reason: "boom", Attempts: 3, Topic: "t", Subscription: "s"})
	info, ok := crossbus.DeadLetterInfoOf(&dl)
	require.True(t, ok)
	assert.Equal(t, "boom", info.Reason)
	assert.Equal(t, 3, info.Attempts)
	assert.Equal(t, "t", info.Topic)
	assert.Equal(t, "s", info.Subscription)
	assert.False(t, info.Time.IsZero())
	_, ok = crossbus.DeadLetterInfoOf(&e)
	assert.False(t, ok, "the original is untouched")
	assert.NoError(t, crossbus.Validate(&dl), "dead-letter extensions are valid names")
	long := driver.DeadLetterEvent(&e, crossbus.DeadLetterInfo{Reason: strings.Repeat("é", 5000)})
	info, _ = crossbus.DeadLetterInfoOf(&long)
	assert.LessOrEqual(t, len(info.Reason), driver.MaxDeadLetterReason)
}

// NewEvent's ids are RFC 9562 version 7 UUIDs that sort by creation time.
func TestNewEventIDsAreTimeOrderedUUIDv7(t *testing.T) {
	prev := ""
	for i := 0; i < 1000; i++ {
		e := crossbus.NewEvent("com.example.x", "/shop/orders")
		u, err := uuid.Parse(e.ID())
		require.NoError(t, err)
		assert.Equal(t, uuid.Version(7), u.Version())
		assert.Equal(t, uuid.RFC4122, u.Variant())
		if i%100 == 0 {
			time.Sleep(2 * time.Millisecond)
			if prev != "" {
				assert.Less(t, prev, e.ID(), "ids of later milliseconds sort later")
			}
			prev = e.ID()
		}
		assert.Equal(t, "/shop/orders", e.Source())
		require.NoError(t, crossbus.Validate(&e))
	}
	odd := crossbus.NewEvent("com.example.x", "https://shop.example.com/a?b=c#d")
	assert.Equal(t, "https://shop.example.com/a?b=c#d", odd.Source())
}
