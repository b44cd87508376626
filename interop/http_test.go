package interop_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
	"github.com/crossbus/crossbus/providers/gcp/push"
	"github.com/crossbus/crossbus/providers/memory"
)

// collector is a handler that keeps what it is given.
type collector struct {
	mu     sync.Mutex
	events []*crossbus.Event
	more   chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) Handle(_ context.Context, e *crossbus.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := e.Clone()
	c.events = append(c.events, &cp)
	select {
	case c.more <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the first n events, failing the test when they do not come.
func (c *collector) wait(t *testing.T, n int) []*crossbus.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		if len(c.events) >= n {
			out := c.events[:n]
			c.events = c.events[n:]
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("%d of %d events arrived", len(c.events), n)
		}
	}
}

// endpointServer serves h (built over a memory bus endpoint that hands its
// events to the collector) over HTTP.
func endpointServer(t *testing.T, handler func(ep *crossbus.Endpoint) (http.Handler, error)) (*httptest.Server, *collector) {
	t.Helper()
	b, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	col := newCollector()
	ep, err := b.NewEndpoint("http-in", "interop", col, crossbus.WithDeadLetterTopic("http-in-dead-letters"))
	require.NoError(t, err)
	h, err := handler(ep)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, col
}

// sdkHTTPSend sends the fixtures with the SDK's HTTP client, in binary mode
// or structured mode.
func sdkHTTPSend(t *testing.T, ctx context.Context, fs []fixture, structured bool, opts ...cehttp.Option) {
	t.Helper()
	c, err := client.NewHTTP(opts...)
	require.NoError(t, err)
	if structured {
		ctx = binding.WithForceStructured(ctx)
	}
	for _, f := range fs {
		res := c.Send(ctx, sdkEvent(f))
		require.True(t, cehttpAccepted(res), "%s: %v", f.name, res)
	}
}

func cehttpAccepted(res error) bool {
	var r *cehttp.Result
	if protocol.IsACK(res) {
		return true
	}
	if errorsAs(res, &r) {
		return r.StatusCode >= 200 && r.StatusCode < 300
	}
	return false
}

// The SDK's HTTP binary writer and reader: what each may change.
var (
	// httpBinary is a binary-mode HTTP request from the SDK: every value
	// travels as text.
	httpBinary = expect{types: allStrings}
	// httpStructured is the JSON event format.
	httpStructured = expect{types: structuredTypes}
)

func TestHTTPPushToCrossbus(t *testing.T) {
	ctx := testCtx(t)
	for _, target := range []struct {
		name    string
		handler func(ep *crossbus.Endpoint) (http.Handler, error)
	}{
		{"Pub/Sub push handler", func(ep *crossbus.Endpoint) (http.Handler, error) {
			return push.NewHandler(ep, push.Options{InsecureNoAuthentication: true})
		}},
		{"Event Grid webhook", func(ep *crossbus.Endpoint) (http.Handler, error) {
			return eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
		}},
	} {
		for _, structured := range []bool{false, true} {
			mode, x := "binary", httpBinary
			if structured {
				mode, x = "structured", httpStructured
			}
			t.Run(target.name+", SDK "+mode, func(t *testing.T) {
				srv, col := endpointServer(t, target.handler)
				fs := fixtures(t)
				sdkHTTPSend(t, ctx, fs, structured, cehttp.WithTarget(srv.URL))
				for _, got := range col.wait(t, len(fs)) {
					assertSame(t, got, x)
				}
			})
		}
	}
}

func TestEventGridNamespace(t *testing.T) {
	ctx := testCtx(t)
	srv := egtest.NewServer(egtest.Options{})
	t.Cleanup(srv.Close)

	for _, structured := range []bool{false, true} {
		mode := "binary"
		if structured {
			mode = "structured"
		}
		t.Run("SDK "+mode+" publish to crossbus receive", func(t *testing.T) {
			topic := "sdk-" + mode
			require.NoError(t, srv.CreateTopic(topic))
			require.NoError(t, srv.CreateSubscription(topic, "reader", egtest.SubscriptionConfig{}))
			ns, err := eventgrid.NewNamespace(eventgrid.NamespaceOptions{Endpoint: srv.Endpoint(), Key: srv.Key(),
				ClientOptions: srv.ClientOptions(), MaxWaitTime: eventgrid.MinMaxWaitTime})
			require.NoError(t, err)
			defer ns.Close(ctx)
			fs := fixtures(t)
			sdkHTTPSend(t, ctx, fs, structured, cehttp.WithTarget(srv.Endpoint()+"/topics/"+topic+":publish?api-version=2024-06-01"),
				cehttp.WithClient(*srv.Client()), cehttp.WithHeader("Authorization", "SharedAccessKey "+srv.Key()))
			r, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: "reader"})
			require.NoError(t, err)
			defer r.Close(ctx)
			// Event Grid keeps events in the JSON format: what a binary
			// request carried as text stays text.
			x := httpStructured
			if !structured {
				x = httpBinary
			}
			for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
				assertSame(t, got, x)
			}
		})
	}

	t.Run("crossbus publish read by the SDK", func(t *testing.T) {
		// The namespace publish request (a CloudEvents batch) as the SDK's
		// HTTP reader sees it.
		var mu sync.Mutex
		var got []event.Event
		sdkSide := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			evs, err := cehttp.NewEventsFromHTTPRequest(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			got = append(got, evs...)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
		}))
		defer sdkSide.Close()
		o := eventgrid.NamespaceOptions{Endpoint: sdkSide.URL, Key: "k"}
		o.ClientOptions.Transport = sdkSide.Client()
		ns, err := eventgrid.NewNamespace(o)
		require.NoError(t, err)
		defer ns.Close(ctx)
		fs := fixtures(t)
		require.NoError(t, ns.Publish(ctx, "out", events(fs)))
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, got, len(fs))
		for i := range got {
			assertSame(t, &got[i], httpStructured)
		}
	})
}

func TestEventGridBasicTopicPushToSDKReceiver(t *testing.T) {
	ctx := testCtx(t)
	srv := egtest.NewServer(egtest.Options{})
	t.Cleanup(srv.Close)
	endpoint, err := srv.CreateBasicTopic("out", egtest.CloudEventsSchema)
	require.NoError(t, err)

	// The SDK's HTTP receiver, answering Event Grid's validation handshake
	// (the CloudEvents OPTIONS request) with its built-in handler.
	p, err := cehttp.New(cehttp.WithDefaultOptionsHandlerFunc([]string{http.MethodPost}, 100, []string{"*"}, true))
	require.NoError(t, err)
	received := make(chan event.Event, 16)
	h, err := client.NewHTTPReceiveHandler(ctx, p, func(e event.Event) { received <- e })
	require.NoError(t, err)
	sdkSide := httptest.NewServer(h)
	defer sdkSide.Close()
	require.NoError(t, srv.AddWebhook(ctx, "out", egtest.Webhook{Name: "sdk", URL: sdkSide.URL}))

	topics, err := eventgrid.NewTopics(eventgrid.TopicsOptions{Endpoints: map[string]string{"out": endpoint}, Key: srv.Key(), ClientOptions: srv.ClientOptions()})
	require.NoError(t, err)
	defer topics.Close(ctx)
	fs := fixtures(t)
	require.NoError(t, topics.Publish(ctx, "out", events(fs)))
	for range fs {
		select {
		case e := <-received:
			assertSame(t, &e, httpStructured)
		case <-ctx.Done():
			t.Fatal("the SDK receiver did not get every event")
		}
	}
	assert.Empty(t, srv.WebhookDeadLetters("out", "sdk"))
}
