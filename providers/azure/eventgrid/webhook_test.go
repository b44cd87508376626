package eventgrid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cebinding "github.com/cloudevents/sdk-go/v2/binding"
	ceclient "github.com/cloudevents/sdk-go/v2/client"
	ceprotocol "github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/memory"
)

// sink is a route handler that records what it handled and fails on demand.
type sink struct {
	mu       sync.Mutex
	events   []crossbus.Event
	attempts []int
	fail     func(ev *crossbus.Event, attempt int) error
	changed  chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{}, 100)} }

func (s *sink) Handle(ctx context.Context, ev *crossbus.Event) error {
	info, _ := crossbus.DeliveryInfoFrom(ctx)
	s.mu.Lock()
	s.events = append(s.events, ev.Clone())
	s.attempts = append(s.attempts, info.Attempt)
	fail := s.fail
	s.mu.Unlock()
	s.changed <- struct{}{}
	if fail != nil {
		return fail(ev, info.Attempt)
	}
	return nil
}

func (s *sink) handled() ([]crossbus.Event, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]crossbus.Event(nil), s.events...), append([]int(nil), s.attempts...)
}

func (s *sink) waitFor(t *testing.T, n int) []crossbus.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		evs, _ := s.handled()
		if len(evs) >= n {
			return evs
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("handled %d of %d events", len(evs), n)
		}
	}
}

// pushEnv is a webhook in front of an endpoint on an in-memory bus, whose
// dead-letter topic can be read.
type pushEnv struct {
	sink *sink
	bus  *crossbus.Bus
	mem  *memory.Provider
	hook *eventgrid.Webhook
	srv  *httptest.Server
}

const pushMaxAttempts = 3

func newPushEnv(t *testing.T, opts eventgrid.WebhookOptions) *pushEnv {
	t.Helper()
	mem := memory.New(memory.Options{})
	ctx := context.Background()
	require.NoError(t, mem.CreateTopic(ctx, "dead"))
	require.NoError(t, mem.CreateSubscription(ctx, "dead", "reader", false))
	b := newBus(t, mem)
	s := newSink()
	ep, err := b.NewEndpoint("orders", "billing", s, crossbus.WithDeadLetterTopic("dead"),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: pushMaxAttempts, InitialBackoff: 10 * time.Second, MaxBackoff: time.Minute, Multiplier: 2,
			Jitter: crossbus.NoJitter}))
	require.NoError(t, err)
	hook, err := eventgrid.NewWebhook(ep, opts)
	require.NoError(t, err)
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	return &pushEnv{sink: s, bus: b, mem: mem, hook: hook, srv: srv}
}

// deadLetters reads n dead letters from the endpoint's dead-letter topic.
func (p *pushEnv) deadLetters(t *testing.T, n int) []crossbus.Event {
	t.Helper()
	r, err := p.mem.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "dead", Name: "reader"})
	require.NoError(t, err)
	defer r.Close(context.Background())
	var out []crossbus.Event
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, n)
	for len(out) < n {
		k, err := r.Receive(ctx, buf)
		require.NoError(t, err)
		for _, d := range buf[:k] {
			out = append(out, d.Event().Clone())
			require.NoError(t, d.Ack(ctx))
		}
	}
	return out
}

type pushReq struct {
	method  string
	query   string
	header  map[string]string
	body    string
	expects int
}

func (p *pushEnv) do(t *testing.T, r pushReq) *http.Response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, p.srv.URL+"/events"+r.query, strings.NewReader(r.body))
	require.NoError(t, err)
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if r.expects != 0 {
		require.Equal(t, r.expects, resp.StatusCode, "body: %s", b)
	}
	return resp
}

func cloudEventJSON(id string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"/shop","type":"com.example.order.placed","time":"2026-11-29T10:00:00Z","datacontenttype":"application/json","data":{"id":"` + id + `"}}`
}

const blobCreated = `[{
  "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/uploads/blobs/cat.png",
  "eventType": "Microsoft.Storage.BlobCreated",
  "id": "831e1650-001e-001b-66ab-eeb76e069631",
  "data": {"api": "PutBlob", "contentType": "image/png", "contentLength": 524288, "blobType": "BlockBlob",
           "url": "https://acct.blob.core.windows.net/uploads/cat.png"},
  "dataVersion": "1.0",
  "metadataVersion": "1",
  "eventTime": "2026-11-29T10:15:30.1234567Z"
},{
  "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/uploads/blobs/dog.png",
  "eventType": "Microsoft.Storage.BlobDeleted",
  "id": "831e1650-001e-001b-66ab-eeb76e069632",
  "data": {"api": "DeleteBlob", "url": "https://acct.blob.core.windows.net/uploads/dog.png"},
  "dataVersion": "",
  "metadataVersion": "1",
  "eventTime": "2026-11-29T10:15:31Z"
}]`

func TestWebhookCloudEventsAbuseProtectionHandshake(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        eventgrid.WebhookOptions
		origin      string
		status      int
		wantOrigin  string
		wantRate    string
		wantConsent bool
	}{
		{"event grid is allowed by default", eventgrid.WebhookOptions{InsecureNoAuthentication: true}, "eventgrid.azure.net", 200, "eventgrid.azure.net", "*", true},
		{"other origins are not", eventgrid.WebhookOptions{InsecureNoAuthentication: true}, "attacker.example.com", 403, "", "", false},
		{"a listed origin and a rate", eventgrid.WebhookOptions{InsecureNoAuthentication: true, AllowedOrigins: []string{"events.example.com"}, AllowedRate: 120}, "events.example.com", 200, "events.example.com", "120", true},
		{"wildcard", eventgrid.WebhookOptions{InsecureNoAuthentication: true, AllowedOrigins: []string{"*"}}, "anyone.example.com", 200, "anyone.example.com", "*", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPushEnv(t, tc.opts)
			resp := p.do(t, pushReq{method: http.MethodOptions, header: map[string]string{"WebHook-Request-Origin": tc.origin}, expects: tc.status})
			assert.Equal(t, tc.wantOrigin, resp.Header.Get("WebHook-Allowed-Origin"))
			assert.Equal(t, tc.wantRate, resp.Header.Get("WebHook-Allowed-Rate"))
			if tc.wantConsent {
				assert.Contains(t, resp.Header.Get("Allow"), "POST")
			}
		})
	}
}

func TestWebhookEventGridSubscriptionValidation(t *testing.T) {
	p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	body := `[{"id":"2d1781af","topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.EventGrid/topics/t","subject":"",
	  "data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/s/validate?id=512d38b6"},
	  "eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-11-29T10:00:00Z","metadataVersion":"1","dataVersion":"2"}]`
	resp := p.do(t, pushReq{body: body, header: map[string]string{"Content-Type": "application/json", "aeg-event-type": "SubscriptionValidation"}, expects: 200})
	var out map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	assert.Equal(t, map[string]string{"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}, out)
	evs, _ := p.sink.handled()
	assert.Empty(t, evs, "a validation is not an event for the handler")

	// A deletion notice is acknowledged and not handled either.
	p.do(t, pushReq{body: `[{"id":"x","topic":"/t","subject":"","eventType":"Microsoft.EventGrid.SubscriptionDeletedEvent","eventTime":"2026-11-29T10:00:00Z","data":{}}]`,
		header: map[string]string{"Content-Type": "application/json"}, expects: 200})
	evs, _ = p.sink.handled()
	assert.Empty(t, evs)
}

func TestWebhookCloudEventsSingleAndBatch(t *testing.T) {
	p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	p.do(t, pushReq{body: cloudEventJSON("e1"), header: map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8", "aeg-delivery-count": "0"}, expects: 200})
	p.do(t, pushReq{body: "[" + cloudEventJSON("e2") + "," + cloudEventJSON("e3") + "," + cloudEventJSON("e4") + "]",
		header: map[string]string{"Content-Type": "application/cloudevents-batch+json; charset=utf-8", "aeg-delivery-count": "0"}, expects: 200})
	evs, attempts := p.sink.handled()
	require.Len(t, evs, 4)
	for i, ev := range evs {
		assert.Equal(t, "e"+strconv.Itoa(i+1), ev.ID(), "delivery order is kept")
		assert.JSONEq(t, `{"id":"`+ev.ID()+`"}`, string(ev.Data()))
	}
	assert.Equal(t, []int{1, 1, 1, 1}, attempts)
}

func TestWebhookEventGridSchemaMapsToCloudEvents(t *testing.T) {
	p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	p.do(t, pushReq{body: blobCreated, header: map[string]string{"Content-Type": "application/json", "aeg-event-type": "Notification", "aeg-delivery-count": "0"}, expects: 200})
	evs, _ := p.sink.handled()
	require.Len(t, evs, 2)
	ev := evs[0]
	assert.Equal(t, "1.0", ev.SpecVersion())
	assert.Equal(t, "831e1650-001e-001b-66ab-eeb76e069631", ev.ID())
	assert.Equal(t, "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct", ev.Source(), "source is the topic")
	assert.Equal(t, "Microsoft.Storage.BlobCreated", ev.Type(), "type is the eventType")
	assert.Equal(t, "/blobServices/default/containers/uploads/blobs/cat.png", ev.Subject())
	assert.Equal(t, time.Date(2026, 11, 29, 10, 15, 30, 123456700, time.UTC), ev.Time())
	assert.Equal(t, "application/json", ev.DataContentType())
	assert.Equal(t, "1.0", crossbus.ExtensionString(&ev, eventgrid.ExtDataVersion))
	type blob struct {
		API           string `json:"api"`
		ContentLength int    `json:"contentLength"`
	}
	data, err := crossbus.DataAs[blob](&ev)
	require.NoError(t, err)
	assert.Equal(t, blob{API: "PutBlob", ContentLength: 524288}, data)
	_, hasDV := evs[1].Extensions()[eventgrid.ExtDataVersion]
	assert.False(t, hasDV, "an empty dataVersion adds no extension")
}

func TestWebhookStatusCodesTellEventGridWhatToDo(t *testing.T) {
	errDown := errors.New("payment service down")
	for _, tc := range []struct {
		name       string
		fail       func(ev *crossbus.Event, attempt int) error
		req        pushReq
		deadLetter string // reason expected on the dead-letter topic
	}{
		{name: "success is 200", req: pushReq{body: cloudEventJSON("a"), expects: 200}},
		{name: "a failure before the last attempt asks for a retry", fail: func(*crossbus.Event, int) error { return errDown },
			req: pushReq{body: cloudEventJSON("a"), header: map[string]string{"aeg-delivery-count": "1"}, expects: 503}},
		{name: "the last attempt dead-letters and acknowledges", fail: func(*crossbus.Event, int) error { return errDown },
			req: pushReq{body: cloudEventJSON("a"), header: map[string]string{"aeg-delivery-count": strconv.Itoa(pushMaxAttempts - 1)}, expects: 200}, deadLetter: "payment service down"},
		{name: "a permanent failure dead-letters at once", fail: func(*crossbus.Event, int) error { return crossbus.Permanent(errors.New("card declined")) },
			req: pushReq{body: cloudEventJSON("a"), expects: 200}, deadLetter: "card declined"},
		{name: "one failing event retries the whole batch", fail: func(ev *crossbus.Event, _ int) error {
			if ev.ID() == "b" {
				return errDown
			}
			return nil
		}, req: pushReq{body: "[" + cloudEventJSON("a") + "," + cloudEventJSON("b") + "]", header: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, expects: 503}},
		{name: "an undecodable payload is 400 so Event Grid dead-letters it", req: pushReq{body: `{"specversion":"1.0","id":"x"}`, expects: 400}},
		{name: "an undecodable event of a batch is dead-lettered, the others handled",
			req:        pushReq{body: "[" + cloudEventJSON("a") + `,{"specversion":"1.0","id":"x"}]`, header: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, expects: 200},
			deadLetter: "undecodable message"},
		{name: "not JSON is 400", req: pushReq{body: `<xml/>`, header: map[string]string{"Content-Type": "application/xml"}, expects: 400}},
		{name: "GET is 405", req: pushReq{method: http.MethodGet, expects: 405}},
		{name: "a body over the limit is 413", req: pushReq{body: `[` + strings.Repeat(" ", 5<<20) + `]`, header: map[string]string{"Content-Type": "application/json"}, expects: 413}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
			p.sink.fail = tc.fail
			if tc.req.header == nil {
				tc.req.header = map[string]string{}
			}
			if _, ok := tc.req.header["Content-Type"]; !ok {
				tc.req.header["Content-Type"] = "application/cloudevents+json"
			}
			resp := p.do(t, tc.req)
			if tc.req.expects == 503 {
				ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
				require.NoError(t, err, "Retry-After is set")
				assert.GreaterOrEqual(t, ra, 10, "Retry-After carries the retry policy's backoff")
			}
			if tc.deadLetter != "" {
				dls := p.deadLetters(t, 1)
				info, ok := crossbus.DeadLetterInfoOf(&dls[0])
				require.True(t, ok)
				assert.Contains(t, info.Reason, tc.deadLetter)
				assert.Equal(t, "orders", info.Topic)
			}
		})
	}
}

func TestWebhookAttemptComesFromTheDeliveryCount(t *testing.T) {
	p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	for _, count := range []string{"", "0", "1", "garbage"} {
		p.do(t, pushReq{body: cloudEventJSON("a"), header: map[string]string{"Content-Type": "application/cloudevents+json", "aeg-delivery-count": count}, expects: 200})
	}
	_, attempts := p.sink.handled()
	assert.Equal(t, []int{1, 1, 2, 1}, attempts)
}

func TestWebhookAuthentication(t *testing.T) {
	secret := eventgrid.SharedSecret{Secret: "s3cret"}
	bearer := eventgrid.BearerToken{Verifier: eventgrid.TokenVerifierFunc(func(_ context.Context, tok string) error {
		if tok != "entra-token" {
			return errors.New("signature does not verify")
		}
		return nil
	})}
	validation := `[{"id":"v","topic":"/t","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-11-29T10:00:00Z","data":{"validationCode":"code-1"}}]`
	ce := map[string]string{"Content-Type": "application/cloudevents+json"}
	eg := map[string]string{"Content-Type": "application/json"}
	origin := map[string]string{"WebHook-Request-Origin": eventgrid.Origin}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for hk, hv := range h {
			out[hk] = hv
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts eventgrid.WebhookOptions
		reqs []pushReq
	}{
		{"off: anyone may push", eventgrid.WebhookOptions{InsecureNoAuthentication: true}, []pushReq{
			{body: cloudEventJSON("a"), header: ce, expects: 200},
			{method: http.MethodOptions, header: origin, expects: 200},
		}},
		{"shared secret in the query", eventgrid.WebhookOptions{Auth: secret}, []pushReq{
			{body: cloudEventJSON("a"), header: ce, expects: 401},
			{body: cloudEventJSON("a"), header: ce, query: "?secret=wrong", expects: 401},
			{body: cloudEventJSON("a"), header: ce, query: "?secret=s3cret", expects: 200},
			{method: http.MethodOptions, header: origin, expects: 401},
			{method: http.MethodOptions, header: origin, query: "?secret=s3cret", expects: 200},
			{body: validation, header: eg, expects: 401},
			{body: validation, header: eg, query: "?secret=s3cret", expects: 200},
		}},
		{"shared secret in a header, handshakes exempt", eventgrid.WebhookOptions{Auth: secret, AllowUnauthenticatedHandshake: true}, []pushReq{
			{body: cloudEventJSON("a"), header: with(ce, "X-Webhook-Secret", "s3cret"), expects: 200},
			{body: cloudEventJSON("a"), header: ce, expects: 401},
			{method: http.MethodOptions, header: origin, expects: 200},
			{body: validation, header: with(eg, "aeg-event-type", "SubscriptionValidation"), expects: 200},
			{body: validation, header: eg, expects: 401}, // Event Grid marks its handshakes
			{body: blobCreated, header: eg, expects: 401},
			{body: blobCreated, header: with(eg, "aeg-event-type", "SubscriptionValidation"), expects: 401}, // marked, but not a handshake
			{body: cloudEventJSON("a"), header: with(ce, "aeg-event-type", "SubscriptionValidation"), expects: 401},
		}},
		{"Entra ID bearer token", eventgrid.WebhookOptions{Auth: bearer}, []pushReq{
			{body: cloudEventJSON("a"), header: with(ce, "Authorization", "Bearer entra-token"), expects: 200},
			{body: cloudEventJSON("a"), header: with(ce, "Authorization", "Bearer forged"), expects: 401},
			{body: cloudEventJSON("a"), header: with(ce, "Authorization", "Basic dXNlcjpwYXNz"), expects: 401},
			{body: cloudEventJSON("a"), header: ce, expects: 401},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPushEnv(t, tc.opts)
			accepted := 0
			for _, r := range tc.reqs {
				resp := p.do(t, r)
				if r.expects == 401 {
					continue
				}
				if r.method != http.MethodOptions && strings.Contains(r.body, "specversion") {
					accepted++
				}
				_ = resp
			}
			evs, _ := p.sink.handled()
			assert.Len(t, evs, accepted, "refused requests reach no handler")
		})
	}
}

// The CloudEvents SDK's HTTP client pushes to the webhook in binary and
// structured mode; the webhook's status codes come back as its results.
func TestWebhookAcceptsTheCloudEventsSDKClient(t *testing.T) {
	p := newPushEnv(t, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	c, err := ceclient.NewHTTP(cehttp.WithTarget(p.srv.URL + "/events"))
	require.NoError(t, err)
	ctx := testCtx(t)

	binary := crossbus.NewEvent("com.example.order.placed", "/sdk")
	binary.SetSubject("orders/1")
	binary.SetExtension("tenant", "acme")
	require.NoError(t, crossbus.SetData(&binary, map[string]int{"n": 1}))
	res := c.Send(ctx, binary)
	require.True(t, ceprotocol.IsACK(res), "binary mode: %v", res)

	structured := crossbus.NewEvent("com.example.note", "/sdk")
	require.NoError(t, crossbus.SetData(&structured, "plain text"))
	res = c.Send(cebinding.WithForceStructured(ctx), structured)
	require.True(t, ceprotocol.IsACK(res), "structured mode: %v", res)

	evs := p.sink.waitFor(t, 2)
	assert.Equal(t, binary.ID(), evs[0].ID())
	assert.Equal(t, "orders/1", evs[0].Subject())
	assert.Equal(t, "acme", crossbus.ExtensionString(&evs[0], "tenant"))
	assert.JSONEq(t, `{"n":1}`, string(evs[0].Data()))
	assert.Equal(t, "plain text", string(evs[1].Data()))
	assert.Equal(t, "text/plain", evs[1].DataContentType())

	p.sink.fail = func(*crossbus.Event, int) error { return errors.New("not now") }
	res = c.Send(ctx, binary)
	require.True(t, ceprotocol.IsNACK(res), "a handler failure is a NACK: %v", res)
	var hr *cehttp.Result
	require.ErrorAs(t, res, &hr)
	assert.Equal(t, http.StatusServiceUnavailable, hr.StatusCode)
}

func TestNewWebhookValidatesOptions(t *testing.T) {
	_, err := eventgrid.NewWebhook(nil, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	b := newBus(t, memory.New(memory.Options{AutoCreate: true}))
	ep, err := b.NewEndpoint("topic", "sub", newSink(), crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	_, err = eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{InsecureNoAuthentication: true, AllowedRate: -1})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "AllowedRate")
}
