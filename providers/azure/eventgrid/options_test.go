package eventgrid

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
)

func TestNamespaceURL(t *testing.T) {
	t.Setenv(DefaultKeyEnv, "key-from-env")
	t.Setenv("MY_EG_KEY", "other-key")
	for _, tc := range []struct {
		url     string
		check   func(t *testing.T, o NamespaceOptions)
		wantErr string
	}{
		{url: "azeventgridns://ns.westeurope-1.eventgrid.azure.net", check: func(t *testing.T, o NamespaceOptions) {
			assert.Equal(t, "https://ns.westeurope-1.eventgrid.azure.net", o.Endpoint)
			assert.Equal(t, "key-from-env", o.Key)
			assert.False(t, o.NativeDeadLetter)
		}},
		{url: "azeventgridns://ns.westeurope-1.eventgrid.azure.net?lockduration=120s&maxwait=30&deadletter=native&keyenv=MY_EG_KEY", check: func(t *testing.T, o NamespaceOptions) {
			assert.Equal(t, 120*time.Second, o.LockDuration)
			assert.Equal(t, 30*time.Second, o.MaxWaitTime)
			assert.True(t, o.NativeDeadLetter)
			assert.Equal(t, "other-key", o.Key)
		}},
		{url: "azeventgridns:///", wantErr: "namespace host"},
		{url: "azeventgridns://ns/orders", wantErr: "takes no path"},
		{url: "azeventgridns://ns?deadletter=blob", wantErr: "deadletter"},
		{url: "azeventgridns://ns?lockduration=soon", wantErr: "lockduration"},
		{url: "azeventgridns://ns?subscription=x", wantErr: `unknown azeventgridns URL parameter "subscription"`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			o, err := namespaceOptionsFromURL(u)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, crossbus.ErrInvalidURL)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

func TestTopicsURL(t *testing.T) {
	t.Setenv(DefaultKeyEnv, "k")
	u, _ := url.Parse("azeventgrid://orders.westeurope-1.eventgrid.azure.net")
	o, err := topicsOptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"orders": "https://orders.westeurope-1.eventgrid.azure.net/api/events"}, o.Endpoints,
		"the topic is named after the host's first label")
	u, _ = url.Parse("azeventgrid://127.0.0.1:8443/basic/x/api/events?topic=shipments")
	o, err = topicsOptionsFromURL(u)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"shipments": "https://127.0.0.1:8443/basic/x/api/events"}, o.Endpoints)
}

func TestOpenByURL(t *testing.T) {
	t.Setenv(DefaultKeyEnv, "k")
	ctx := context.Background()
	b, err := crossbus.Open(ctx, "azeventgridns://ns.westeurope-1.eventgrid.azure.net?lockduration=90s")
	require.NoError(t, err)
	defer b.Close(ctx)
	var o NamespaceOptions
	require.True(t, b.As(&o))
	assert.Equal(t, 90*time.Second, o.LockDuration)
	assert.Equal(t, 90*time.Second, b.Capabilities().DefaultAckDeadline)
	assert.Equal(t, time.Hour, b.Capabilities().MaxRedeliveryDelay)

	tb, err := crossbus.Open(ctx, "azeventgrid://orders.westeurope-1.eventgrid.azure.net")
	require.NoError(t, err)
	defer tb.Close(ctx)
	var tp *Topics
	require.True(t, tb.As(&tp))
	assert.Equal(t, MaxTopicBatch, tb.Capabilities().MaxBatchCount)

	_, err = crossbus.Open(ctx, "azeventgridns://ns?maxwait=5s")
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "MaxWaitTime")
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o    NamespaceOptions
		want string
	}{
		{NamespaceOptions{Key: "k"}, "Endpoint"},
		{NamespaceOptions{Endpoint: "http://ns", Key: "k"}, "https"},
		{NamespaceOptions{Endpoint: "https://ns"}, "Key or Credential"},
		{NamespaceOptions{Endpoint: "https://ns", Key: "k", LockDuration: 10 * time.Minute}, "LockDuration"},
	} {
		_, err := NewNamespace(tc.o)
		require.ErrorIs(t, err, crossbus.ErrInvalidOption)
		assert.Contains(t, err.Error(), tc.want)
	}
	_, err := NewTopics(TopicsOptions{Key: "k"})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = NewTopics(TopicsOptions{Endpoints: map[string]string{"t": "https://t/api/events"}, Key: "k", Credential: nil})
	require.NoError(t, err)
}

func TestDataTravelsInTheRightJSONMember(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ct     string
		data   []byte
		base64 bool
		want   string // the JSON member and value
	}{
		{"JSON stays JSON", "application/json", []byte(`{"a":1}`), false, `"data":{"a":1}`},
		{"+json goes base64 for the Go SDK's sake", "application/vnd.order+json", []byte(`[1,2]`), false, `"data_base64":"WzEsMl0="`},
		{"invalid JSON goes base64", "application/json", []byte(`{"a":`), false, `"data_base64":"eyJhIjo="`},
		{"text is a string", "text/plain", []byte("héllo"), false, `"data":"héllo"`},
		{"XML is a string", "application/xml", []byte("<a/>"), false, `"data":"\u003ca/\u003e"`},
		{"invalid UTF-8 text goes base64", "text/plain", []byte{0xff}, false, `"data_base64":"/w=="`},
		{"binary", "application/octet-stream", []byte{0, 1}, true, `"data_base64":"AAE="`},
		{"binary flag wins", "application/json", []byte(`{}`), true, `"data_base64":"e30="`},
		{"no content type but JSON", "", []byte(`{"a":1}`), false, `"data":{"a":1}`},
		{"no content type, not JSON", "", []byte(`plain`), false, `"data_base64":"cGxhaW4="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := crossbus.NewEvent("t", "/s")
			if tc.ct != "" {
				e.SetDataContentType(tc.ct)
			}
			e.DataEncoded, e.DataBase64 = tc.data, tc.base64
			ce, size, err := toAzure(&e)
			require.NoError(t, err)
			b, err := json.Marshal(ce)
			require.NoError(t, err)
			assert.Equal(t, len(b), size, "the size is the JSON size")
			assert.Contains(t, string(b), tc.want)
			back, err := DecodeCloudEvent(b)
			require.NoError(t, err)
			assert.Equal(t, tc.data, back.Data(), "decodes back to the same bytes")
		})
	}
}

func TestDecodeAcceptsPlusJSONDataAsAJSONValue(t *testing.T) {
	ev, err := DecodeCloudEvent([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/vnd.order+json","data":{"a":[1,2]}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"a":[1,2]}`, string(ev.Data()))
	assert.Equal(t, "application/vnd.order+json", ev.DataContentType())
}

func TestExtensionsKeepTheirCloudEventsType(t *testing.T) {
	e := crossbus.NewEvent("t", "/s")
	e.SetExtension("n", int32(-3))
	e.SetExtension("ok", true)
	e.SetExtension("s", "x")
	e.SetExtension("u", types.URI{URL: url.URL{Scheme: "https", Host: "example.com"}})
	e.SetExtension("at", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	e.SetExtension("raw", []byte{1, 2})
	ce, _, err := toAzure(&e)
	require.NoError(t, err)
	b, _ := json.Marshal(ce)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, float64(-3), m["n"])
	assert.Equal(t, true, m["ok"])
	assert.Equal(t, "x", m["s"])
	assert.Equal(t, "https://example.com", m["u"])
	assert.Equal(t, "2026-01-02T03:04:05Z", m["at"])
	assert.Equal(t, "AQI=", m["raw"])
}
