package kafka_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/kafka"
)

// These tests hold the codec to the header conventions of the CloudEvents Go
// SDK's Kafka bindings (Kafka protocol binding, binary content mode) without
// a broker, driving the SDK's binding machinery through small adapters
// (package interop runs the real kafka_sarama binding against kfake):
//
//   - writer: every context attribute is a header "ce_<name>" except
//     datacontenttype, which is "content-type"; values are the canonical
//     string form (types.Format); extensions are "ce_<name>"; data is the
//     record value; the partitionkey extension is also the record key.
//   - reader: binary mode when ce_specversion is present; header names are
//     lower-cased; "ce_" headers are attributes when the spec knows the name
//     and extensions otherwise; "content-type" is datacontenttype.

var sdkSpecs = spec.WithPrefix("ce_")

type sdkRecordWriter struct{ rec kgo.Record }

func (w *sdkRecordWriter) Start(context.Context) error { w.rec.Headers = nil; return nil }
func (w *sdkRecordWriter) End(context.Context) error   { return nil }

func (w *sdkRecordWriter) SetAttribute(a spec.Attribute, v any) error {
	s, err := types.Format(v)
	if err != nil {
		return err
	}
	key := sdkSpecs.Prefix() + a.Name()
	if a.Kind() == spec.DataContentType {
		key = "content-type"
	}
	w.rec.Headers = append(w.rec.Headers, kgo.RecordHeader{Key: key, Value: []byte(s)})
	return nil
}

func (w *sdkRecordWriter) SetExtension(name string, v any) error {
	s, err := types.Format(v)
	if err != nil {
		return err
	}
	w.rec.Headers = append(w.rec.Headers, kgo.RecordHeader{Key: sdkSpecs.Prefix() + name, Value: []byte(s)})
	if name == crossbus.ExtPartitionKey {
		w.rec.Key = []byte(s)
	}
	return nil
}

func (w *sdkRecordWriter) SetData(r io.Reader) (err error) {
	w.rec.Value, err = io.ReadAll(r)
	return err
}

type sdkRecordMessage struct {
	props map[string][]byte
	value []byte
}

func newSDKRecordMessage(r *kgo.Record) *sdkRecordMessage {
	m := &sdkRecordMessage{props: map[string][]byte{}, value: r.Value}
	for _, h := range r.Headers {
		m.props[strings.ToLower(h.Key)] = h.Value
	}
	return m
}

func (m *sdkRecordMessage) version() spec.Version {
	return sdkSpecs.Version(string(m.props[sdkSpecs.PrefixedSpecVersionName()]))
}

func (m *sdkRecordMessage) ReadEncoding() binding.Encoding {
	if m.version() != nil {
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m *sdkRecordMessage) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

func (m *sdkRecordMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	v := m.version()
	for k, val := range m.props {
		var err error
		switch {
		case strings.HasPrefix(k, sdkSpecs.Prefix()):
			if a := v.Attribute(k); a != nil {
				err = w.SetAttribute(a, string(val))
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, sdkSpecs.Prefix()), string(val))
			}
		case k == "content-type":
			err = w.SetAttribute(v.AttributeFromKind(spec.DataContentType), string(val))
		}
		if err != nil {
			return err
		}
	}
	if m.value != nil {
		return w.SetData(bytes.NewReader(m.value))
	}
	return nil
}

func (m *sdkRecordMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	v := m.version()
	if v == nil {
		return nil, nil
	}
	a := v.AttributeFromKind(k)
	if a == nil {
		return nil, nil
	}
	if val, ok := m.props[a.PrefixedName()]; ok {
		return a, string(val)
	}
	return a, nil
}

func (m *sdkRecordMessage) GetExtension(name string) any {
	if val, ok := m.props[sdkSpecs.Prefix()+name]; ok {
		return string(val)
	}
	return nil
}

func (m *sdkRecordMessage) Finish(error) error { return nil }

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
	rec, err := kafka.EncodeRecord("orders", &in)
	require.NoError(t, err)

	want := map[string]string{
		"ce_specversion":  "1.0",
		"ce_id":           in.ID(),
		"ce_source":       "https://example.com/shop",
		"ce_type":         "com.example.order.placed",
		"ce_subject":      "orders/42",
		"ce_dataschema":   "https://example.com/schemas/order.json",
		"ce_time":         "2026-11-29T12:30:45.123456789Z",
		"content-type":    "application/json",
		"ce_tenant":       "acme",
		"ce_partitionkey": "customer-9",
	}
	got := map[string]string{}
	for _, h := range rec.Headers {
		_, dup := got[h.Key]
		require.False(t, dup, "header %s written twice", h.Key)
		got[h.Key] = string(h.Value)
	}
	assert.Equal(t, want, got)
	assert.Equal(t, "customer-9", string(rec.Key), "the record key is the partition key")
	assert.Equal(t, "orders", rec.Topic)

	out, err := binding.ToEvent(context.Background(), newSDKRecordMessage(rec))
	require.NoError(t, err)
	assertSameEvent(t, &in, out)
}

func TestInteropWrittenBySDKConventionsReadByCrossbus(t *testing.T) {
	in := interopEvent(t)
	w := &sdkRecordWriter{}
	_, err := binding.Write(context.Background(), (*binding.EventMessage)(&in), nil, w)
	require.NoError(t, err)
	var out crossbus.Event
	require.NoError(t, kafka.DecodeRecord(w.rec.Key, w.rec.Value, w.rec.Headers, &out))
	assertSameEvent(t, &in, &out)
}

func TestDecodeRecordTakesPartitionKeyFromRecordKey(t *testing.T) {
	hs := []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("1")},
		{Key: "ce_source", Value: []byte("/s")}, {Key: "ce_type", Value: []byte("t")}}
	var e crossbus.Event
	require.NoError(t, kafka.DecodeRecord([]byte("account-7"), nil, hs, &e))
	assert.Equal(t, "account-7", crossbus.PartitionKey(&e), "a keyed record keeps its key for ordering")
	assert.Nil(t, e.Data())

	hs = append(hs, kgo.RecordHeader{Key: "ce_partitionkey", Value: []byte("from-header")})
	require.NoError(t, kafka.DecodeRecord([]byte("account-7"), nil, hs, &e))
	assert.Equal(t, "from-header", crossbus.PartitionKey(&e), "the header wins over the key")
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
