package eventgrid_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
	"github.com/crossbus/crossbus/providers/memory"
)

func newTopics(t *testing.T, srv *egtest.Server, topic string, mod func(*eventgrid.TopicsOptions)) *eventgrid.Topics {
	t.Helper()
	o := eventgrid.TopicsOptions{Endpoints: map[string]string{topic: srv.BasicEndpoint(topic)}, Key: srv.Key(), ClientOptions: srv.ClientOptions()}
	if mod != nil {
		mod(&o)
	}
	tp, err := eventgrid.NewTopics(o)
	require.NoError(t, err)
	return tp
}

func TestTopicsPublishThroughTheAzureSDK(t *testing.T) {
	srv := newServer(t)
	_, err := srv.CreateBasicTopic("orders", egtest.CloudEventsSchema)
	require.NoError(t, err)
	ctx := testCtx(t)
	b := newBus(t, newTopics(t, srv, "orders", nil))

	evs := jsonEvents(t, 3)
	evs[1].SetExtension("tenant", "acme")
	require.NoError(t, b.Publish(ctx, "orders", evs...))
	got := srv.Published("orders")
	require.Len(t, got, 3)
	for i, raw := range got {
		ev, err := eventgrid.DecodeCloudEvent(raw)
		require.NoError(t, err)
		assert.Equal(t, evs[i].ID(), ev.ID())
		assert.Equal(t, evs[i].Data(), ev.Data())
	}
	assert.Contains(t, string(got[1]), `"tenant":"acme"`)
	assert.Contains(t, string(got[0]), `"data":{"n":0}`, "JSON data is sent as JSON")

	require.ErrorIs(t, b.Publish(ctx, "unknown", jsonEvent(t, 1)), crossbus.ErrTopicNotFound)
	_, err = b.Subscribe(ctx, "orders", "sub", newSink(), crossbus.WithDeadLetterTopic("dead"))
	require.ErrorIs(t, err, crossbus.ErrNotSupported)

	wrong := newBus(t, newTopics(t, srv, "orders", func(o *eventgrid.TopicsOptions) { o.Key = "wrong" }))
	require.ErrorIs(t, wrong.Publish(ctx, "orders", jsonEvent(t, 1)), eventgrid.ErrUnauthorized)

	srv.RejectEvents(func(ev map[string]any) string {
		if ev["subject"] == "poison" {
			return "subject poison refused"
		}
		return ""
	})
	batch := jsonEvents(t, 6)
	batch[4].SetSubject("poison")
	err = b.Publish(ctx, "orders", batch...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{4}, pe.FailedIndexes())
	assert.Len(t, srv.Published("orders"), 3+5, "the other five were published once")
}

func TestTopicsAuthenticateWithEntraIDTokens(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{VerifyToken: func(tok string) bool { return tok == "good-token" }})
	defer srv.Close()
	_, err := srv.CreateBasicTopic("orders", egtest.CloudEventsSchema)
	require.NoError(t, err)
	tp := newTopics(t, srv, "orders", func(o *eventgrid.TopicsOptions) { o.Key, o.Credential = "", staticToken("good-token") })
	require.NoError(t, tp.Publish(testCtx(t), "orders", []*crossbus.Event{jsonEvent(t, 1)}))
	assert.Len(t, srv.Published("orders"), 1)
}

// A basic topic pushes to the webhook through Event Grid's handshake,
// headers and retries: publish with the azeventgrid client, handle with
// crossbus, retry on failure with the delivery count as the attempt.
func TestWebhookEndToEndFromABasicCloudEventsTopic(t *testing.T) {
	srv := newServer(t)
	_, err := srv.CreateBasicTopic("orders", egtest.CloudEventsSchema)
	require.NoError(t, err)
	p := newPushEnv(t, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}})
	ctx := testCtx(t)
	require.NoError(t, srv.AddWebhook(ctx, "orders", egtest.Webhook{Name: "billing", URL: p.srv.URL + "/events?secret=s3cret", RetryDelay: 20 * time.Millisecond}))

	evs := jsonEvents(t, 3)
	p.sink.fail = func(ev *crossbus.Event, attempt int) error {
		if ev.ID() == evs[1].ID() && attempt == 1 {
			return errors.New("flaky")
		}
		return nil
	}
	require.NoError(t, newBus(t, newTopics(t, srv, "orders", nil)).Publish(ctx, "orders", evs...))
	handled := p.sink.waitFor(t, 4)
	_, attempts := p.sink.handled()
	ids := []string{}
	for _, ev := range handled {
		ids = append(ids, ev.ID())
	}
	assert.Equal(t, []string{evs[0].ID(), evs[1].ID(), evs[1].ID(), evs[2].ID()}, ids)
	assert.Equal(t, []int{1, 1, 2, 1}, attempts, "the retry arrives with aeg-delivery-count 1")
	require.Eventually(t, func() bool { return len(srv.WebhookPushes("orders", "billing")) == 4 }, 5*time.Second, 5*time.Millisecond)
	pushes := srv.WebhookPushes("orders", "billing")
	statuses := []int{}
	for _, p := range pushes {
		statuses = append(statuses, p.Status)
	}
	assert.Equal(t, []int{200, 503, 200, 200}, statuses)
	assert.Empty(t, srv.WebhookDeadLetters("orders", "billing"))
}

func TestWebhookEndToEndFromABasicEventGridSchemaTopic(t *testing.T) {
	srv := newServer(t)
	_, err := srv.CreateBasicTopic("storage", egtest.EventGridSchema)
	require.NoError(t, err)
	p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	ctx := testCtx(t)
	require.NoError(t, srv.AddWebhook(ctx, "storage", egtest.Webhook{Name: "thumbnails", URL: p.srv.URL + "/events"}),
		"the SubscriptionValidationEvent handshake succeeds")

	c, err := azeventgrid.NewClientWithSharedKeyCredential(srv.BasicEndpoint("storage"), azcore.NewKeyCredential(srv.Key()),
		&azeventgrid.ClientOptions{ClientOptions: srv.ClientOptions()})
	require.NoError(t, err)
	now := time.Now().UTC()
	_, err = c.PublishEvents(ctx, []azeventgrid.Event{{
		ID: to.Ptr("blob-1"), EventType: to.Ptr("Microsoft.Storage.BlobCreated"), Subject: to.Ptr("/blobServices/default/containers/c/blobs/a.png"),
		EventTime: &now, DataVersion: to.Ptr("1.0"), Data: map[string]any{"url": "https://acct.blob.core.windows.net/c/a.png"},
	}}, nil)
	require.NoError(t, err)
	ev := p.sink.waitFor(t, 1)[0]
	assert.Equal(t, "blob-1", ev.ID())
	assert.Equal(t, "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/egtest/providers/Microsoft.EventGrid/topics/storage", ev.Source())
	assert.Equal(t, "Microsoft.Storage.BlobCreated", ev.Type())
	assert.Equal(t, "1.0", crossbus.ExtensionString(&ev, eventgrid.ExtDataVersion))
	assert.JSONEq(t, `{"url":"https://acct.blob.core.windows.net/c/a.png"}`, string(ev.Data()))
}

func TestWebhookHandshakeNeedsAuthUnlessExempt(t *testing.T) {
	srv := newServer(t)
	_, err := srv.CreateBasicTopic("orders", egtest.CloudEventsSchema)
	require.NoError(t, err)
	ctx := testCtx(t)
	headers := map[string]string{"X-Webhook-Secret": "s3cret"}

	strict := newPushEnv(t, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}})
	err = srv.AddWebhook(ctx, "orders", egtest.Webhook{Name: "strict", URL: strict.srv.URL, Headers: headers})
	require.Error(t, err, "delivery headers are not sent with the handshake, so it is refused")
	assert.Contains(t, err.Error(), "401")

	exempt := newPushEnv(t, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}, AllowUnauthenticatedHandshake: true})
	require.NoError(t, srv.AddWebhook(ctx, "orders", egtest.Webhook{Name: "exempt", URL: exempt.srv.URL, Headers: headers}))
	require.NoError(t, newBus(t, newTopics(t, srv, "orders", nil)).Publish(ctx, "orders", jsonEvent(t, 1)))
	exempt.sink.waitFor(t, 1)
}

// With batched delivery a failing event makes Event Grid push the whole
// batch again; the idempotency middleware keeps the others from running
// twice.
func TestWebhookBatchRetryWithIdempotentHandlers(t *testing.T) {
	srv := newServer(t)
	_, err := srv.CreateBasicTopic("orders", egtest.CloudEventsSchema)
	require.NoError(t, err)
	ctx := testCtx(t)

	mem := memory.New(memory.Options{AutoCreate: true})
	b := newBus(t, mem)
	var runs atomic.Int64
	var failedOnce atomic.Bool
	s := newSink()
	s.fail = func(ev *crossbus.Event, attempt int) error {
		runs.Add(1)
		if ev.Subject() == "flaky" && failedOnce.CompareAndSwap(false, true) {
			return errors.New("flaky")
		}
		return nil
	}
	ep, err := b.NewEndpoint("orders", "billing", s, crossbus.WithDeadLetterTopic("dead"),
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	require.NoError(t, err)
	hook, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	require.NoError(t, err)
	web := httptest.NewServer(hook)
	defer web.Close()
	require.NoError(t, srv.AddWebhook(ctx, "orders", egtest.Webhook{Name: "batched", URL: web.URL, MaxEventsPerBatch: 10, RetryDelay: 20 * time.Millisecond}))

	evs := jsonEvents(t, 5)
	evs[2].SetSubject("flaky")
	require.NoError(t, newBus(t, newTopics(t, srv, "orders", nil)).Publish(ctx, "orders", evs...))
	require.Eventually(t, func() bool {
		ps := srv.WebhookPushes("orders", "batched")
		return len(ps) > 0 && ps[len(ps)-1].Status == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	ps := srv.WebhookPushes("orders", "batched")
	require.Len(t, ps, 2)
	assert.Equal(t, 5, ps[0].Events, "one push carried the batch")
	assert.Equal(t, http.StatusServiceUnavailable, ps[0].Status)
	assert.Equal(t, int64(6), runs.Load(), "5 first runs, then only the failed event again")
}
