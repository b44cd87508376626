package nats_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	natsio "github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/nats"
)

// These tests hold the codec to the header conventions of the CloudEvents Go
// SDK's NATS and JetStream bindings without a server, driving the SDK's
// binding machinery (binding.EventMessage, binding.ToEvent, the spec
// attribute table with the "ce-" prefix) through small adapters that follow
// the conventions (package interop runs the real JetStream binding against
// a server):
//
//   - writer: every context attribute, datacontenttype included, is a header
//     "ce-<name>"; values are their canonical string form (time in RFC 3339
//     with nanoseconds); extensions are "ce-<name>"; data is the payload; no
//     other header is needed.
//   - reader: binary mode when ce-specversion is present; "ce-" headers are
//     attributes when the spec knows the name and extensions otherwise;
//     "content-type" is datacontenttype.

var sdkSpecs = spec.WithPrefix("ce-")

// sdkHeaderWriter writes an event's headers by those conventions.
type sdkHeaderWriter struct {
	h    natsio.Header
	data []byte
}

func (w *sdkHeaderWriter) Start(context.Context) error { w.h = natsio.Header{}; return nil }
func (w *sdkHeaderWriter) End(context.Context) error   { return nil }

func (w *sdkHeaderWriter) SetAttribute(a spec.Attribute, v any) error {
	s := fmt.Sprint(v)
	if t, ok := v.(time.Time); ok {
		s = t.Format(time.RFC3339Nano)
	}
	w.h.Set(sdkSpecs.Prefix()+a.Name(), s)
	return nil
}

func (w *sdkHeaderWriter) SetExtension(name string, v any) error {
	w.h.Set(sdkSpecs.Prefix()+name, fmt.Sprint(v))
	return nil
}

func (w *sdkHeaderWriter) SetData(r io.Reader) (err error) {
	w.data, err = io.ReadAll(r)
	return err
}

// sdkHeaderMessage reads a NATS message by those conventions, as a
// binding.Message the SDK turns into an event.
type sdkHeaderMessage struct {
	h    natsio.Header
	data []byte
}

func (m *sdkHeaderMessage) ReadEncoding() binding.Encoding {
	if m.h.Get(sdkSpecs.PrefixedSpecVersionName()) != "" {
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m *sdkHeaderMessage) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

func (m *sdkHeaderMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	v := sdkSpecs.Version(m.h.Get(sdkSpecs.PrefixedSpecVersionName()))
	if v == nil {
		return fmt.Errorf("unknown spec version")
	}
	for k, vs := range m.h {
		var err error
		switch {
		case strings.HasPrefix(k, sdkSpecs.Prefix()):
			if a := v.Attribute(k); a != nil {
				err = w.SetAttribute(a, vs[0])
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, sdkSpecs.Prefix()), vs[0])
			}
		case k == "content-type":
			err = w.SetAttribute(v.AttributeFromKind(spec.DataContentType), vs[0])
		}
		if err != nil {
			return err
		}
	}
	if len(m.data) > 0 {
		return w.SetData(bytes.NewReader(m.data))
	}
	return nil
}

func (m *sdkHeaderMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	v := sdkSpecs.Version(m.h.Get(sdkSpecs.PrefixedSpecVersionName()))
	if v == nil {
		return nil, nil
	}
	a := v.AttributeFromKind(k)
	if a == nil {
		return nil, nil
	}
	if s := m.h.Get(a.PrefixedName()); s != "" {
		return a, s
	}
	return a, nil
}

func (m *sdkHeaderMessage) GetExtension(name string) any {
	if s := m.h.Get(sdkSpecs.Prefix() + name); s != "" {
		return s
	}
	return nil
}

func (m *sdkHeaderMessage) Finish(error) error { return nil }

func interopEvent(t *testing.T) crossbus.Event {
	e := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	e.SetSubject("orders/42")
	e.SetDataSchema("https://example.com/schemas/order.json")
	e.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&e, map[string]any{"id": 42}))
	e.SetExtension("tenant", "acme")
	e.SetExtension(crossbus.ExtPartitionKey, "customer-9")
	return e
}

func TestInteropWrittenByCrossbusReadBySDKConventions(t *testing.T) {
	in := interopEvent(t)
	msg, err := nats.EncodeMsg("orders", &in)
	require.NoError(t, err)

	// The header names and values, as documented.
	want := map[string]string{
		"ce-specversion":     "1.0",
		"ce-id":              in.ID(),
		"ce-source":          "https://example.com/shop",
		"ce-type":            "com.example.order.placed",
		"ce-subject":         "orders/42",
		"ce-dataschema":      "https://example.com/schemas/order.json",
		"ce-time":            "2026-11-29T12:30:45.123456789Z",
		"ce-datacontenttype": "application/json",
		"ce-tenant":          "acme",
		"ce-partitionkey":    "customer-9",
		"Nats-Msg-Id":        nats.MsgID(&in),
	}
	got := map[string]string{}
	for k := range msg.Header {
		got[k] = msg.Header.Get(k)
	}
	assert.Equal(t, want, got)
	assert.JSONEq(t, `{"id":42}`, string(msg.Data))

	out, err := binding.ToEvent(context.Background(), &sdkHeaderMessage{h: msg.Header, data: msg.Data})
	require.NoError(t, err)
	assertSameEvent(t, &in, out)
}

func TestInteropWrittenBySDKConventionsReadByCrossbus(t *testing.T) {
	in := interopEvent(t)
	w := &sdkHeaderWriter{}
	_, err := binding.Write(context.Background(), (*binding.EventMessage)(&in), nil, w)
	require.NoError(t, err)
	require.Equal(t, "1.0", w.h.Get("ce-specversion"))
	require.Equal(t, "application/json", w.h.Get("ce-datacontenttype"))

	var out crossbus.Event
	require.NoError(t, nats.DecodeMsg(w.h, w.data, &out))
	assertSameEvent(t, &in, &out)

	// A reader that names datacontenttype "content-type" is read too.
	h := w.h
	h.Del("ce-datacontenttype")
	h.Set("content-type", "application/json")
	require.NoError(t, nats.DecodeMsg(h, w.data, &out))
	assert.Equal(t, "application/json", out.DataContentType())
}

func assertSameEvent(t *testing.T, want, got *crossbus.Event) {
	t.Helper()
	assert.Equal(t, want.ID(), got.ID())
	assert.Equal(t, want.Source(), got.Source())
	assert.Equal(t, want.Type(), got.Type())
	assert.Equal(t, want.Subject(), got.Subject())
	assert.Equal(t, want.DataSchema(), got.DataSchema())
	assert.Equal(t, want.DataContentType(), got.DataContentType())
	assert.True(t, want.Time().Equal(got.Time()), "time %v vs %v", want.Time(), got.Time())
	assert.Equal(t, want.Data(), got.Data())
	assert.Len(t, got.Extensions(), len(want.Extensions()))
	for name := range want.Extensions() {
		assert.Equal(t, crossbus.ExtensionString(want, name), crossbus.ExtensionString(got, name), "extension %s", name)
	}
}
