package egtest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	ceclient "github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	ceprotocol "github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
)

type call struct {
	path, query, auth, ct, body string
}

func do(t *testing.T, srv *egtest.Server, c call) (int, map[string]any) {
	t.Helper()
	if c.query == "" {
		c.query = "api-version=" + egtest.NamespaceAPIVersion
	}
	if c.auth == "" {
		c.auth = "SharedAccessKey " + srv.Key()
	}
	req, err := http.NewRequest(http.MethodPost, srv.Endpoint()+c.path+"?"+c.query, strings.NewReader(c.body))
	require.NoError(t, err)
	req.Header.Set("Authorization", c.auth)
	if c.ct == "" {
		c.ct = "application/json"
	}
	req.Header.Set("Content-Type", c.ct)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func errorCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

const ev1 = `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`

func TestServerRefusesWhatEventGridRefuses(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{})
	defer srv.Close()
	require.NoError(t, srv.CreateTopic("t"))
	require.NoError(t, srv.CreateSubscription("t", "s", egtest.SubscriptionConfig{}))
	ce := "application/cloudevents+json; charset=utf-8"
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string
	}{
		{"wrong api-version", call{path: "/topics/t:publish", query: "api-version=2023-06-01-preview", ct: ce, body: ev1}, 400, "InvalidApiVersion"},
		{"wrong key", call{path: "/topics/t:publish", auth: "SharedAccessKey nope", ct: ce, body: ev1}, 401, "Unauthorized"},
		{"bearer without a verifier", call{path: "/topics/t:publish", auth: "Bearer tok", ct: ce, body: ev1}, 401, "Unauthorized"},
		{"unknown topic", call{path: "/topics/nope:publish", ct: ce, body: ev1}, 404, "NotFound"},
		{"missing source", call{path: "/topics/t:publish", ct: ce, body: `{"specversion":"1.0","id":"1","type":"t"}`}, 400, "BadRequest"},
		{"bad extension name", call{path: "/topics/t:publish", ct: ce, body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad_Name":1}`}, 400, "BadRequest"},
		{"wrong content type", call{path: "/topics/t:publish", ct: "text/plain", body: ev1}, 400, "BadRequest"},
		{"too large", call{path: "/topics/t:publish", ct: ce, body: strings.Repeat(" ", egtest.MaxRequestBytes+1)}, 413, "RequestEntityTooLarge"},
		{"too many events", call{path: "/topics/t:publish", ct: "application/cloudevents-batch+json", body: "[" + strings.Repeat(ev1+",", egtest.MaxNamespaceEvents) + ev1 + "]"}, 400, "BadRequest"},
		{"maxEvents out of range", call{path: "/topics/t/eventsubscriptions/s:receive", query: "api-version=2024-06-01&maxEvents=101"}, 400, "BadRequest"},
		{"maxWaitTime out of range", call{path: "/topics/t/eventsubscriptions/s:receive", query: "api-version=2024-06-01&maxWaitTime=5"}, 400, "BadRequest"},
		{"release delay not allowed", call{path: "/topics/t/eventsubscriptions/s:release", query: "api-version=2024-06-01&releaseDelayInSeconds=30", body: `{"lockTokens":["x"]}`}, 400, "BadRequest"},
		{"no lock tokens", call{path: "/topics/t/eventsubscriptions/s:acknowledge", body: `{"lockTokens":[]}`}, 400, "BadRequest"},
		{"unknown subscription", call{path: "/topics/t/eventsubscriptions/nope:acknowledge", body: `{"lockTokens":["x"]}`}, 404, "NotFound"},
		{"unknown operation", call{path: "/topics/t/eventsubscriptions/s:peek", body: `{}`}, 404, "NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := do(t, srv, tc.c)
			assert.Equal(t, tc.status, status, "%v", out)
			assert.Equal(t, tc.code, errorCode(out))
		})
	}
	assert.Zero(t, srv.Stats().PublishedEvents, "nothing refused was stored")
}

func TestServerLockTokensAndReleaseSemantics(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{ReleaseDelayScale: 0.01})
	defer srv.Close()
	require.NoError(t, srv.CreateTopic("t"))
	require.NoError(t, srv.CreateSubscription("t", "s", egtest.SubscriptionConfig{LockDuration: time.Second}))
	status, _ := do(t, srv, call{path: "/topics/t:publish", ct: "application/cloudevents-batch+json", body: "[" + ev1 + "]"})
	require.Equal(t, 200, status)

	status, out := do(t, srv, call{path: "/topics/t/eventsubscriptions/s:receive", query: "api-version=2024-06-01&maxEvents=10&maxWaitTime=10"})
	require.Equal(t, 200, status)
	value := out["value"].([]any)
	require.Len(t, value, 1)
	bp := value[0].(map[string]any)["brokerProperties"].(map[string]any)
	tok := bp["lockToken"].(string)
	assert.Equal(t, float64(1), bp["deliveryCount"])
	assert.Equal(t, "1", value[0].(map[string]any)["event"].(map[string]any)["id"])

	status, out = do(t, srv, call{path: "/topics/t/eventsubscriptions/s:renewLock", body: `{"lockTokens":["` + tok + `","bogus"]}`})
	require.Equal(t, 200, status)
	assert.Equal(t, []any{tok}, out["succeededLockTokens"])
	failed := out["failedLockTokens"].([]any)
	require.Len(t, failed, 1)
	f := failed[0].(map[string]any)
	assert.Equal(t, "bogus", f["lockToken"])
	assert.Equal(t, "TokenLost", f["error"].(map[string]any)["code"])

	status, _ = do(t, srv, call{path: "/topics/t/eventsubscriptions/s:release", query: "api-version=2024-06-01&releaseDelayInSeconds=60", body: `{"lockTokens":["` + tok + `"]}`})
	require.Equal(t, 200, status)
	status, out = do(t, srv, call{path: "/topics/t/eventsubscriptions/s:acknowledge", body: `{"lockTokens":["` + tok + `"]}`})
	require.Equal(t, 200, status)
	assert.Len(t, out["failedLockTokens"], 1, "a released event's token is spent")

	start := time.Now()
	status, out = do(t, srv, call{path: "/topics/t/eventsubscriptions/s:receive", query: "api-version=2024-06-01&maxWaitTime=10"})
	require.Equal(t, 200, status)
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "60 s release at scale 0.01")
	value = out["value"].([]any)
	require.Len(t, value, 1)
	assert.Equal(t, float64(2), value[0].(map[string]any)["brokerProperties"].(map[string]any)["deliveryCount"])
	assert.Equal(t, map[int]int{60: 1}, srv.Stats().ReleaseDelays)
}

func TestServerFailNextInjectsErrors(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{})
	defer srv.Close()
	require.NoError(t, srv.CreateTopic("t"))
	srv.FailNext("publish", http.StatusServiceUnavailable)
	status, out := do(t, srv, call{path: "/topics/t:publish", ct: "application/cloudevents+json", body: ev1})
	assert.Equal(t, 503, status)
	assert.Equal(t, "ServiceUnavailable", errorCode(out))
	status, _ = do(t, srv, call{path: "/topics/t:publish", ct: "application/cloudevents+json", body: ev1})
	assert.Equal(t, 200, status, "only the next request fails")
}

// The CloudEvents SDK's HTTP client publishes in binary mode, which
// namespace topics accept as well.
func TestServerAcceptsBinaryModePublishFromTheCloudEventsSDK(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{})
	defer srv.Close()
	require.NoError(t, srv.CreateTopic("t"))
	require.NoError(t, srv.CreateSubscription("t", "s", egtest.SubscriptionConfig{DeadLetter: true}))
	c, err := ceclient.NewHTTP(
		cehttp.WithTarget(srv.Endpoint()+"/topics/t:publish?api-version="+egtest.NamespaceAPIVersion),
		cehttp.WithHeader("Authorization", "SharedAccessKey "+srv.Key()),
		cehttp.WithClient(*srv.Client()))
	require.NoError(t, err)
	e := event.New()
	e.SetID("bin-1")
	e.SetSource("/sdk")
	e.SetType("com.example.binary")
	require.NoError(t, e.SetData("application/json", map[string]int{"n": 1}))
	res := c.Send(context.Background(), e)
	require.True(t, ceprotocol.IsACK(res), "%v", res)

	status, out := do(t, srv, call{path: "/topics/t/eventsubscriptions/s:receive", query: "api-version=2024-06-01&maxWaitTime=10"})
	require.Equal(t, 200, status)
	got := out["value"].([]any)[0].(map[string]any)["event"].(map[string]any)
	assert.Equal(t, "bin-1", got["id"])
	assert.Equal(t, map[string]any{"n": float64(1)}, got["data"], "stored in the JSON event format")
}

// Deleting an event subscription answers a receive waiting on it, and every
// later receive and settlement, with 404 NotFound; deleting a topic does the
// same for its subscriptions and its publishes.
func TestServerDeletesSubscriptionsAndTopics(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{})
	defer srv.Close()
	require.NoError(t, srv.CreateTopic("orders"))
	require.NoError(t, srv.CreateSubscription("orders", "billing", egtest.SubscriptionConfig{}))
	require.NoError(t, srv.CreateSubscription("orders", "shipping", egtest.SubscriptionConfig{}))

	type result struct {
		status int
		out    map[string]any
	}
	waiting := make(chan result, 1)
	go func() {
		status, out := do(t, srv, call{path: "/topics/orders/eventsubscriptions/billing:receive", query: "api-version=2024-06-01&maxWaitTime=60"})
		waiting <- result{status, out}
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, srv.DeleteSubscription("orders", "billing"))
	select {
	case r := <-waiting:
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "NotFound", errorCode(r.out))
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting receive did not end when its subscription was deleted")
	}
	status, _ := do(t, srv, call{path: "/topics/orders/eventsubscriptions/billing:acknowledge", body: `{"lockTokens":["x"]}`})
	assert.Equal(t, http.StatusNotFound, status)
	assert.Error(t, srv.DeleteSubscription("orders", "billing"), "already gone")

	status, _ = do(t, srv, call{path: "/topics/orders:publish", ct: "application/cloudevents+json", body: ev1})
	require.Equal(t, 200, status, "the topic and its other subscription stay")
	assert.Equal(t, 1, srv.Backlog("orders", "shipping"))

	require.NoError(t, srv.DeleteTopic("orders"))
	status, _ = do(t, srv, call{path: "/topics/orders:publish", ct: "application/cloudevents+json", body: ev1})
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = do(t, srv, call{path: "/topics/orders/eventsubscriptions/shipping:receive", query: "api-version=2024-06-01&maxWaitTime=10"})
	assert.Equal(t, http.StatusNotFound, status)
	assert.Error(t, srv.DeleteTopic("orders"))
}
