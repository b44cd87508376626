package push_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
	"github.com/crossbus/crossbus/providers/gcp/push"
	"github.com/crossbus/crossbus/providers/memory"
)

// fixture is a push endpoint over the in-memory bus (which also holds the
// route's dead-letter topic), served by httptest.
type fixture struct {
	bus  *crossbus.Bus
	mem  *memory.Provider
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seenEvent
	fail func(ctx context.Context, e *crossbus.Event) error
}

type seenEvent struct {
	ev      crossbus.Event
	attempt int
}

func newFixture(t *testing.T, opts push.Options, route ...crossbus.RouteOption) *fixture {
	t.Helper()
	f := &fixture{mem: memory.New(memory.Options{AutoCreate: true})}
	var err error
	f.bus, err = crossbus.New(f.mem)
	require.NoError(t, err)
	require.NoError(t, f.mem.CreateSubscription(context.Background(), "dead", "inspect", false))
	h := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		f.mu.Lock()
		f.seen = append(f.seen, seenEvent{ev: e.Clone(), attempt: info.Attempt})
		fail := f.fail
		f.mu.Unlock()
		if fail != nil {
			return fail(ctx, e)
		}
		return nil
	})
	route = append([]crossbus.RouteOption{crossbus.WithDeadLetterTopic("dead"),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 2 * time.Second, MaxBackoff: 10 * time.Second, Multiplier: 2})}, route...)
	ep, err := f.bus.NewEndpoint("uploads", "resizer", h, route...)
	require.NoError(t, err)
	handler, err := push.NewHandler(ep, opts)
	require.NoError(t, err)
	f.srv = httptest.NewServer(handler)
	t.Cleanup(func() {
		f.srv.Close()
		_ = f.bus.Close(context.Background())
	})
	return f
}

func (f *fixture) events() []seenEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenEvent(nil), f.seen...)
}

func (f *fixture) setFail(fn func(ctx context.Context, e *crossbus.Event) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

func (f *fixture) post(t *testing.T, header map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func sampleEvent() cloudevents.Event {
	e := cloudevents.NewEvent()
	e.SetID("evt-1")
	e.SetSource("https://example.com/shop")
	e.SetType("com.example.order.placed")
	e.SetSubject("orders/42")
	e.SetTime(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	e.SetExtension("tenant", "acme")
	_ = e.SetData(cloudevents.ApplicationJSON, map[string]int{"amount": 5})
	return e
}

func TestCloudEventsSDKClientSendsBinaryAndStructured(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	c, err := cloudevents.NewClientHTTP()
	require.NoError(t, err)
	ctx := cloudevents.ContextWithTarget(context.Background(), f.srv.URL)

	binary := sampleEvent()
	require.True(t, cloudevents.IsACK(c.Send(ctx, binary)), "binary mode is acknowledged")
	structured := sampleEvent()
	structured.SetID("evt-2")
	require.True(t, cloudevents.IsACK(c.Send(binding.WithForceStructured(ctx), structured)), "structured mode is acknowledged")

	got := f.events()
	require.Len(t, got, 2)
	for i, want := range []cloudevents.Event{binary, structured} {
		g := got[i].ev
		assert.Equal(t, want.ID(), g.ID())
		assert.Equal(t, want.Type(), g.Type())
		assert.Equal(t, want.Source(), g.Source())
		assert.Equal(t, want.Subject(), g.Subject())
		assert.True(t, want.Time().Equal(g.Time()))
		assert.Equal(t, "acme", crossbus.ExtensionString(&g, "tenant"))
		assert.JSONEq(t, `{"amount":5}`, string(g.Data()))
		assert.Equal(t, 1, got[i].attempt)
	}
}

func TestFailedHandlerAsksForRetryThenDeadLetters(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	f.setFail(func(context.Context, *crossbus.Event) error { return errors.New("thumbnail service down") })
	c, err := cloudevents.NewClientHTTP()
	require.NoError(t, err)
	ctx := cloudevents.ContextWithTarget(context.Background(), f.srv.URL)
	e := sampleEvent()

	for attempt := 1; attempt <= 2; attempt++ {
		res := c.Send(ctx, e)
		require.False(t, cloudevents.IsACK(res), "attempt %d must be retried", attempt)
		var hr *cehttp.Result
		require.True(t, cloudevents.ResultAs(res, &hr), "an HTTP result: %v", res)
		assert.Equal(t, http.StatusServiceUnavailable, hr.StatusCode)
	}
	// The third delivery is the policy's last attempt: dead-lettered, acked.
	require.True(t, cloudevents.IsACK(c.Send(ctx, e)))
	got := f.events()
	require.Len(t, got, 3)
	assert.Equal(t, []int{1, 2, 3}, []int{got[0].attempt, got[1].attempt, got[2].attempt}, "attempts counted per event")
	recv, err := f.mem.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "dead", Name: "inspect"})
	require.NoError(t, err)
	defer recv.Close(context.Background())
	ctx2, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, 1)
	n, err := recv.Receive(ctx2, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	info, ok := crossbus.DeadLetterInfoOf(buf[0].Event())
	require.True(t, ok, "the dead letter carries the dead-letter extensions")
	assert.Contains(t, info.Reason, "thumbnail service down")
	assert.Equal(t, 3, info.Attempts)
	assert.Equal(t, "evt-1", buf[0].Event().ID())
}

func TestRetryAfterCarriesThePolicyDelay(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	f.setFail(func(context.Context, *crossbus.Event) error { return errors.New("busy") })
	resp := f.post(t, map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, "")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"), "the first backoff of the route's policy, 2s")
}

// A Pub/Sub push request in the shape Pub/Sub sends it (wrapped payload,
// both spellings of the ids), for a message crossbus published in binary
// mode, with a dead-letter policy's deliveryAttempt.
func TestPubSubPushEnvelopeOfABindingMessage(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	data := base64.StdEncoding.EncodeToString([]byte(`{"amount":5}`))
	body := `{
	  "message": {
	    "attributes": {
	      "ce-specversion": "1.0", "ce-id": "order-42", "ce-source": "https://example.com/shop",
	      "ce-type": "com.example.order.placed", "ce-time": "2026-11-29T12:00:00Z",
	      "ce-partitionkey": "customer-9", "content-type": "application/json"
	    },
	    "data": "` + data + `",
	    "messageId": "2070443601311540", "message_id": "2070443601311540",
	    "publishTime": "2026-11-29T12:00:01.123Z", "publish_time": "2026-11-29T12:00:01.123Z",
	    "orderingKey": "customer-9"
	  },
	  "subscription": "projects/my-project/subscriptions/resizer-push",
	  "deliveryAttempt": 2
	}`
	resp := f.post(t, map[string]string{"Content-Type": "application/json", "User-Agent": "APIs-Google"}, body)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	got := f.events()
	require.Len(t, got, 1)
	e := got[0].ev
	assert.Equal(t, "order-42", e.ID())
	assert.Equal(t, "com.example.order.placed", e.Type())
	assert.Equal(t, "customer-9", crossbus.PartitionKey(&e))
	assert.JSONEq(t, `{"amount":5}`, string(e.Data()))
	assert.Equal(t, 2, got[0].attempt, "the envelope's deliveryAttempt is the attempt")
}

func TestPubSubPushEnvelopeOfAPlainMessage(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true, Topic: "projects/my-project/topics/legacy"})
	body := `{"message":{"attributes":{"origin":"cron"},"data":"aGVsbG8=","messageId":"136969346945","publishTime":"2026-11-29T10:00:00Z"},
	  "subscription":"projects/my-project/subscriptions/legacy-push"}`
	resp := f.post(t, map[string]string{"Content-Type": "application/json"}, body)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	got := f.events()
	require.Len(t, got, 1)
	e := got[0].ev
	assert.Equal(t, pubsubwire.MessagePublishedType, e.Type())
	assert.Equal(t, "//pubsub.googleapis.com/projects/my-project/topics/legacy", e.Source())
	assert.Equal(t, "136969346945", e.ID())
	d, err := crossbus.DataAs[pubsubwire.MessagePublishedData](&e)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(d.Message.Data))
	assert.Equal(t, map[string]string{"origin": "cron"}, d.Message.Attributes)
	assert.Equal(t, "projects/my-project/subscriptions/legacy-push", d.Subscription)
}

type storageObject struct {
	Bucket      string `json:"bucket"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        string `json:"size"`
	Generation  string `json:"generation"`
}

// An Eventarc delivery of a Cloud Storage object-finalized event, with the
// headers and body shape Eventarc sends to Cloud Run.
func TestEventarcCloudStorageObjectFinalized(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	var got storageObject
	var subject string
	f.setFail(func(ctx context.Context, e *crossbus.Event) error {
		o, err := crossbus.DataAs[storageObject](e)
		got, subject = o, e.Subject()
		return err
	})
	headers := map[string]string{
		"Content-Type":   "application/json",
		"ce-id":          "8546785469543890",
		"ce-source":      "//storage.googleapis.com/projects/_/buckets/my-uploads",
		"ce-specversion": "1.0",
		"ce-type":        "google.cloud.storage.object.v1.finalized",
		"ce-subject":     "objects/photos/cat.jpg",
		"ce-time":        "2026-11-29T09:30:12.345678Z",
		"ce-bucket":      "my-uploads",
		"Authorization":  "Bearer ignored-without-verifier",
		"traceparent":    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	body := `{"kind":"storage#object","id":"my-uploads/photos/cat.jpg/1701250212345678","selfLink":"https://www.googleapis.com/storage/v1/b/my-uploads/o/photos%2Fcat.jpg",
	  "name":"photos/cat.jpg","bucket":"my-uploads","generation":"1701250212345678","metageneration":"1","contentType":"image/jpeg",
	  "timeCreated":"2026-11-29T09:30:12.345Z","updated":"2026-11-29T09:30:12.345Z","storageClass":"STANDARD","size":"48213",
	  "md5Hash":"XrY7u+Ae7tCTyyK7j1rNww==","crc32c":"yZRlqg==","etag":"CK7h7s2w0oIDEAE="}`
	resp := f.post(t, headers, body)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, storageObject{Bucket: "my-uploads", Name: "photos/cat.jpg", ContentType: "image/jpeg", Size: "48213", Generation: "1701250212345678"}, got)
	assert.Equal(t, "objects/photos/cat.jpg", subject)
	e := f.events()[0].ev
	assert.Equal(t, "google.cloud.storage.object.v1.finalized", e.Type())
	assert.Equal(t, "my-uploads", crossbus.ExtensionString(&e, "bucket"))
}

// Eventarc delivers Pub/Sub messages as messagePublished events; when the
// message is a CloudEvent in the binding's form, the route sees that event.
func TestEventarcMessagePublishedIsUnwrapped(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	inner := crossbus.NewEvent("com.example.order.placed", "/shop")
	inner.SetID("order-7")
	require.NoError(t, crossbus.SetData(&inner, map[string]int{"amount": 9}))
	m, _, err := pubsubwire.Encode(&inner, pubsubwire.Binary)
	require.NoError(t, err)
	m.ID, m.PublishTime = "99", time.Now()
	wrapper := pubsubwire.MessagePublishedEvent(&m, pubsubwire.Origin{Topic: "projects/p/topics/orders", Subscription: "projects/p/subscriptions/eventarc-x"})
	c, err := cloudevents.NewClientHTTP()
	require.NoError(t, err)
	require.True(t, cloudevents.IsACK(c.Send(cloudevents.ContextWithTarget(context.Background(), f.srv.URL), wrapper)))
	got := f.events()
	require.Len(t, got, 1)
	assert.Equal(t, "order-7", got[0].ev.ID())
	assert.Equal(t, "com.example.order.placed", got[0].ev.Type())
	assert.JSONEq(t, `{"amount":9}`, string(got[0].ev.Data()))
}

func TestRejectedRequests(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true, MaxBodyBytes: 1024})
	tests := []struct {
		name   string
		method string
		header map[string]string
		body   string
		status int
	}{
		{"not JSON", http.MethodPost, map[string]string{"Content-Type": "text/plain"}, "hello", http.StatusBadRequest},
		{"envelope without message", http.MethodPost, nil, `{"subscription":"s"}`, http.StatusBadRequest},
		{"message data not base64", http.MethodPost, nil, `{"message":{"data":"***"}}`, http.StatusBadRequest},
		{"binary event without id", http.MethodPost, map[string]string{"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, "", http.StatusBadRequest},
		{"structured garbage", http.MethodPost, map[string]string{"Content-Type": "application/cloudevents+json"}, "{", http.StatusBadRequest},
		{"batch", http.MethodPost, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "[]", http.StatusUnsupportedMediaType},
		{"too large", http.MethodPost, nil, `{"message":{"data":"` + strings.Repeat("A", 2048) + `"}}`, http.StatusRequestEntityTooLarge},
		{"GET", http.MethodGet, nil, "", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.srv.URL, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := f.srv.Client().Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
		})
	}
	assert.Empty(t, f.events(), "no rejected request reaches the handler")
}

func TestAcknowledgeMalformedDropsPoisonRequests(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true, AcknowledgeMalformed: true})
	assert.Equal(t, http.StatusNoContent, f.post(t, nil, "not an envelope").StatusCode)
	assert.Equal(t, http.StatusUnsupportedMediaType,
		f.post(t, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "[]").StatusCode,
		"only malformed bodies are acknowledged, not unsupported ones")
}

func TestNewHandlerChecksItsArguments(t *testing.T) {
	_, err := push.NewHandler(nil, push.Options{InsecureNoAuthentication: true})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	ep, err := f.bus.NewEndpoint("uploads", "thumbnails", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	_, err = push.NewHandler(ep, push.Options{InsecureNoAuthentication: true, MaxBodyBytes: -1})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, fmt.Sprint(err), "MaxBodyBytes")
}

// The message of a push envelope that claims to be a CloudEvent and is not
// one never reaches the handler: the portable layer dead-letters its
// placeholder with the decode error, and the push is acknowledged.
func TestPubSubPushOfAMalformedCloudEventIsDeadLetteredByTheCore(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true, Topic: "projects/my-project/topics/uploads"})
	for name, msg := range map[string]string{
		"structured": `{"attributes":{"content-type":"application/cloudevents+json"},"data":"` +
			base64.StdEncoding.EncodeToString([]byte(`{"specversion":"1.0",`)) + `","messageId":"m-structured"}`,
		"binary": `{"attributes":{"ce-specversion":"1.0","ce-type":"t","ce-source":"/s"},"data":"aGk=","messageId":"m-binary"}`,
	} {
		body := `{"message":` + msg + `,"subscription":"projects/my-project/subscriptions/resizer-push","deliveryAttempt":4}`
		resp := f.post(t, map[string]string{"Content-Type": "application/json"}, body)
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, name)
	}
	assert.Empty(t, f.events(), "no handler ran")

	recv, err := f.mem.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "dead", Name: "inspect"})
	require.NoError(t, err)
	defer recv.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[string]*crossbus.Event{}
	buf := make([]driver.Delivery, 2)
	for len(got) < 2 {
		n, err := recv.Receive(ctx, buf)
		require.NoError(t, err)
		for _, d := range buf[:n] {
			got[d.Event().ID()] = d.Event()
		}
	}
	for _, id := range []string{"m-structured", "m-binary"} {
		e := got[id]
		require.NotNil(t, e, id)
		assert.Equal(t, driver.TypeUndecodable, e.Type())
		assert.Equal(t, "//pubsub.googleapis.com/projects/my-project/topics/uploads", e.Source())
		info, ok := crossbus.DeadLetterInfoOf(e)
		require.True(t, ok)
		assert.Contains(t, info.Reason, "undecodable message: ")
		assert.Equal(t, 4, info.Attempts, "the envelope's deliveryAttempt")
	}
	assert.Equal(t, `{"specversion":"1.0",`, string(got["m-structured"].Data()), "the data as it was published")
}

// A refused token gets 401 with the reason once, and push.ErrUnauthorized
// is a crossbus.ErrUnauthorized.
func TestUnauthorizedResponseNamesTheReasonOnce(t *testing.T) {
	f := newFixture(t, push.Options{Verifier: push.NewGoogleOIDC("https://push.example", pusher)})
	req, err := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(""))
	require.NoError(t, err)
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.True(t, strings.HasPrefix(string(body), "push: unauthorized: "), "body: %q", body)
	assert.Equal(t, 1, strings.Count(string(body), "push:"), "body: %q", body)
	assert.ErrorIs(t, push.ErrUnauthorized, crossbus.ErrUnauthorized)
	assert.Equal(t, "push: unauthorized", push.ErrUnauthorized.Error())
}
