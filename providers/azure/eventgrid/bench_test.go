package eventgrid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
	"github.com/crossbus/crossbus/providers/memory"
)

func benchEvents(b *testing.B, n int) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		ev := crossbus.NewEvent("com.example.order.placed", "/bench")
		require.NoError(b, crossbus.SetData(&ev, map[string]any{"id": i, "sku": "ABC-123", "qty": 2}))
		out[i] = &ev
	}
	return out
}

// BenchmarkNamespacePublish measures publishing batches of 100 events to a
// namespace topic through the aznamespaces client over HTTPS (egtest).
func BenchmarkNamespacePublish(b *testing.B) {
	srv := newServer(b)
	require.NoError(b, srv.CreateTopic("bench"))
	bus := newBus(b, newNamespace(b, namespaceOptions(srv)))
	evs := benchEvents(b, 100)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := bus.Publish(ctx, "bench", evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkNamespacePublishHandle measures publish -> receive -> handle ->
// acknowledge through a crossbus subscription on a namespace queue
// subscription.
func BenchmarkNamespacePublishHandle(b *testing.B) {
	srv := newServer(b)
	require.NoError(b, srv.CreateTopic("bench"))
	require.NoError(b, srv.CreateSubscription("bench", "sub", egtest.SubscriptionConfig{}))
	bus := newBus(b, newNamespace(b, namespaceOptions(srv)))
	ctx := context.Background()
	var handled atomic.Int64
	done := make(chan struct{}, 1)
	var target atomic.Int64
	sub, err := bus.Subscribe(ctx, "bench", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		if handled.Add(1) == target.Load() {
			done <- struct{}{}
		}
		return nil
	}), crossbus.WithDeadLetterTopic("dead"), crossbus.WithConcurrency(8), crossbus.WithPrefetch(32))
	require.NoError(b, err)
	defer sub.Close(ctx)
	evs := benchEvents(b, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		target.Add(int64(len(evs)))
		if err := bus.Publish(ctx, "bench", evs...); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("handled %d of %d", handled.Load(), target.Load())
		}
	}
	b.ReportMetric(float64(handled.Load())/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWebhookBatch measures a webhook handling Event Grid pushes of 10
// CloudEvents each.
func BenchmarkWebhookBatch(b *testing.B) {
	bus := newBus(b, memory.New(memory.Options{AutoCreate: true}))
	ep, err := bus.NewEndpoint("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }), crossbus.WithDeadLetterTopic("dead"))
	require.NoError(b, err)
	hook, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	require.NoError(b, err)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	body, err := json.Marshal(benchEvents(b, 10))
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatal(err, resp.StatusCode)
		}
		resp.Body.Close()
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodePush measures decoding a push of 10 Event Grid schema
// events into CloudEvents.
func BenchmarkDecodePush(b *testing.B) {
	one := `{"id":"831e1650","topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct","subject":"/blobServices/default/containers/c/blobs/a.png","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-11-29T10:15:30.1234567Z","data":{"api":"PutBlob","contentLength":524288},"dataVersion":"1.0","metadataVersion":"1"}`
	body := []byte("[" + one + ",")
	for range 8 {
		body = append(body, one+","...)
	}
	body = append(body, one+"]"...)
	h := http.Header{"Content-Type": {"application/json"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventgrid.DecodePush(h, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "events/s")
}
