package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/functions"
	"github.com/crossbus/crossbus/providers/memory"
)

// app is a custom handler with one Service Bus and one Event Grid function
// whose endpoints record what they handle.
type app struct {
	h    *functions.Handler
	srv  *httptest.Server
	mem  *memory.Provider
	mu   sync.Mutex
	seen []seen
	fail func(ev *crossbus.Event) error
}

type seen struct {
	ev      crossbus.Event
	attempt int
}

const maxAttempts = 4

func newApp(t *testing.T, fns ...functions.Function) *app {
	t.Helper()
	h, err := functions.NewHandler(functions.Options{Auth: functions.LoopbackOnly{}}) // httptest serves on 127.0.0.1
	require.NoError(t, err)
	a := &app{h: h, mem: memory.New(memory.Options{})}
	ctx := context.Background()
	require.NoError(t, a.mem.CreateTopic(ctx, "dead"))
	require.NoError(t, a.mem.CreateSubscription(ctx, "dead", "reader", false))
	b, err := crossbus.New(a.mem)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	handler := crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		a.mu.Lock()
		a.seen = append(a.seen, seen{ev.Clone(), info.Attempt})
		fail := a.fail
		a.mu.Unlock()
		if fail != nil {
			return fail(ev)
		}
		return nil
	})
	retry := crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: maxAttempts, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2})
	if len(fns) == 0 {
		fns = []functions.Function{
			{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message"},
			{Name: "Thumbnails", Trigger: functions.EventGrid, Binding: "event"},
		}
	}
	for _, f := range fns {
		ep, err := b.NewEndpoint("orders", f.Name, handler, crossbus.WithDeadLetterTopic("dead"), retry)
		require.NoError(t, err)
		f.Endpoint = ep
		require.NoError(t, a.h.Register(f))
	}
	a.srv = httptest.NewServer(a.h)
	t.Cleanup(a.srv.Close)
	return a
}

// invoke posts an invocation as the Functions host does.
func (a *app) invoke(t *testing.T, function, body string) (int, functions.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+"/"+function, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", "5f2a0c4e-7f8f-4d1e-9b3b-3c1f1c7d9a11")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out functions.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out), "the response is the custom handler JSON")
	return resp.StatusCode, out
}

func (a *app) handled() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]seen(nil), a.seen...)
}

func (a *app) deadLetters(t *testing.T, n int) []crossbus.Event {
	t.Helper()
	r, err := a.mem.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "dead", Name: "reader"})
	require.NoError(t, err)
	defer r.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, n)
	var out []crossbus.Event
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

// A Service Bus message written by a crossbus Service Bus publisher (AMQP
// binary mode, cloudEvents_ application properties), as the host passes it
// to a custom handler: the string body JSON-encoded twice, metadata values
// as the host serializes them.
const sbBinaryInvocation = `{
  "Data": {"message": "\"{\\\"orderId\\\":42}\""},
  "Metadata": {
    "DeliveryCount": "2",
    "MessageId": "\"6f1c2b3a\"",
    "ContentType": "\"application/json\"",
    "SequenceNumber": "17",
    "EnqueuedTimeUtc": "2026-11-29T10:00:01Z",
    "ApplicationProperties": {
      "cloudEvents_specversion": "1.0", "cloudEvents_id": "ev-1", "cloudEvents_source": "/shop",
      "cloudEvents_type": "com.example.order.placed", "cloudEvents_subject": "orders/42",
      "cloudEvents_time": "2026-11-29T10:00:00Z", "cloudEvents_tenant": "acme", "cloudEvents_priority": 7
    },
    "UserProperties": {"cloudEvents_id": "ev-1"},
    "sys": {"MethodName": "Billing", "UtcNow": "2026-11-29T10:00:02.1234567Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}
  }
}`

func TestServiceBusTriggerBinaryModeCloudEvent(t *testing.T) {
	a := newApp(t)
	status, resp := a.invoke(t, "Billing", sbBinaryInvocation)
	require.Equal(t, http.StatusOK, status, "logs: %v", resp.Logs)
	assert.Equal(t, map[string]any{}, resp.Outputs)
	assert.Nil(t, resp.ReturnValue)
	require.Len(t, resp.Logs, 1)
	assert.Contains(t, resp.Logs[0], `"ev-1"`)

	got := a.handled()
	require.Len(t, got, 1)
	ev := got[0].ev
	assert.Equal(t, 2, got[0].attempt, "the attempt is the DeliveryCount")
	assert.Equal(t, "ev-1", ev.ID())
	assert.Equal(t, "/shop", ev.Source())
	assert.Equal(t, "com.example.order.placed", ev.Type())
	assert.Equal(t, "orders/42", ev.Subject())
	assert.Equal(t, time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), ev.Time())
	assert.Equal(t, "application/json", ev.DataContentType())
	assert.JSONEq(t, `{"orderId":42}`, string(ev.Data()), "the doubly encoded body is unwrapped")
	assert.Equal(t, "acme", crossbus.ExtensionString(&ev, "tenant"))
	assert.Equal(t, int32(7), ev.Extensions()["priority"])
}

func TestServiceBusTriggerPayloadShapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fn      functions.Function
		body    string
		check   func(t *testing.T, ev crossbus.Event, attempt int)
		wantErr string
		// undecodable: the message claims to be a CloudEvent and is not
		// one; its placeholder is dead-lettered with this in the reason.
		undecodable string
	}{
		{name: "colon separator and a singly encoded body",
			body: `{"Data":{"message":"{\"orderId\":7}"},"Metadata":{"DeliveryCount":1,"ContentType":"application/json",
			  "UserProperties":{"cloudEvents:specversion":"1.0","cloudEvents:id":"ev-2","cloudEvents:source":"/shop","cloudEvents:type":"com.example.t"}}}`,
			check: func(t *testing.T, ev crossbus.Event, attempt int) {
				assert.Equal(t, "ev-2", ev.ID())
				assert.JSONEq(t, `{"orderId":7}`, string(ev.Data()))
				assert.Equal(t, 1, attempt)
			}},
		{name: "structured mode, the body as a JSON object",
			body: `{"Data":{"message":{"specversion":"1.0","id":"ev-3","source":"/s","type":"com.example.t","datacontenttype":"application/json","data":{"a":1}}},
			  "Metadata":{"DeliveryCount":3,"ContentType":"application/cloudevents+json"}}`,
			check: func(t *testing.T, ev crossbus.Event, attempt int) {
				assert.Equal(t, "ev-3", ev.ID())
				assert.JSONEq(t, `{"a":1}`, string(ev.Data()))
				assert.Equal(t, 3, attempt)
			}},
		{name: "a plain message is mapped as the Service Bus provider maps it",
			fn: functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message", Entity: "orders"},
			body: `{"Data":{"message":"hello"},"Metadata":{"DeliveryCount":1,"MessageId":"m-9","ContentType":"text/plain","Subject":"greeting",
			  "SessionId":"customer-7","EnqueuedTimeUtc":"2026-11-29T10:00:01.5Z","ApplicationProperties":{"tenant":"acme","Bad-Name":"x","n":3}}}`,
			check: func(t *testing.T, ev crossbus.Event, _ int) {
				assert.Equal(t, "m-9", ev.ID())
				assert.Equal(t, "/orders", ev.Source())
				assert.Equal(t, functions.ForeignEventType, ev.Type())
				assert.Equal(t, "greeting", ev.Subject())
				assert.Equal(t, time.Date(2026, 11, 29, 10, 0, 1, 500_000_000, time.UTC), ev.Time())
				assert.Equal(t, "text/plain", ev.DataContentType())
				assert.Equal(t, "hello", string(ev.Data()))
				assert.Equal(t, "customer-7", crossbus.PartitionKey(&ev))
				assert.Equal(t, "acme", crossbus.ExtensionString(&ev, "tenant"))
				assert.Equal(t, int32(3), ev.Extensions()["n"])
				assert.NotContains(t, ev.Extensions(), "bad-name", "only valid extension names are kept")
			}},
		{name: "a plain message with a Label and no MessageId",
			fn:   functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message", Entity: "orders"},
			body: `{"Data":{"message":"x"},"Metadata":{"SequenceNumber":17,"Label":"legacy.label"}}`,
			check: func(t *testing.T, ev crossbus.Event, attempt int) {
				assert.Equal(t, "orders/17", ev.ID())
				assert.Equal(t, "legacy.label", ev.Subject())
				assert.Equal(t, 1, attempt)
			}},
		{name: "binary data type is base64",
			fn:   functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message", DataType: "binary"},
			body: `{"Data":{"message":"AAEC/w=="},"Metadata":{"MessageId":"m-11","ContentType":"application/octet-stream"}}`,
			check: func(t *testing.T, ev crossbus.Event, _ int) {
				assert.Equal(t, []byte{0, 1, 2, 255}, ev.Data())
			}},
		{name: "retry context gives the attempt when there is no delivery count",
			body:  `{"Data":{"message":"x"},"Metadata":{"MessageId":"m-12","RetryContext":{"RetryCount":2,"MaxRetryCount":5}}}`,
			check: func(t *testing.T, _ crossbus.Event, attempt int) { assert.Equal(t, 3, attempt) }},
		{name: "no binding", body: `{"Data":{"other":"x"},"Metadata":{}}`, wantErr: "no Data.message"},
		{name: "binary mode with a bad time", body: `{"Data":{"message":"x"},"Metadata":{"ApplicationProperties":{"cloudEvents_specversion":"1.0","cloudEvents_id":"a","cloudEvents_source":"/s","cloudEvents_type":"t","cloudEvents_time":"yesterday"}}}`, undecodable: "cloudEvents_time"},
		{name: "wrong specversion", body: `{"Data":{"message":"x"},"Metadata":{"ApplicationProperties":{"cloudEvents_specversion":"0.3","cloudEvents_id":"a"}}}`, undecodable: "specversion"},
		{name: "missing CloudEvents type", body: `{"Data":{"message":"x"},"Metadata":{"ApplicationProperties":{"cloudEvents_specversion":"1.0","cloudEvents_id":"a","cloudEvents_source":"/s"}}}`, undecodable: "type"},
		{name: "structured body that does not parse", body: `{"Data":{"message":"{\"specversion\":"},"Metadata":{"MessageId":"m-13","ContentType":"application/cloudevents+json"}}`, undecodable: "decode CloudEvent"},
		{name: "body not base64 where the binding says binary", fn: functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message", DataType: "binary"},
			body: `{"Data":{"message":"***"},"Metadata":{}}`, wantErr: "body"},
		{name: "not an invocation", body: `[1,2,3]`, wantErr: "invocation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := tc.fn
			if fn.Name == "" {
				fn = functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message"}
			}
			a := newApp(t, fn)
			status, resp := a.invoke(t, "Billing", tc.body)
			if tc.wantErr != "" {
				assert.Equal(t, http.StatusBadRequest, status)
				require.NotEmpty(t, resp.Logs)
				assert.Contains(t, resp.Logs[0], tc.wantErr)
				assert.Empty(t, a.handled())
				return
			}
			if tc.undecodable != "" {
				require.Equal(t, http.StatusOK, status, "settled by dead-lettering; logs: %v", resp.Logs)
				assert.Contains(t, resp.Logs[0], driver.TypeUndecodable)
				assert.Empty(t, a.handled(), "no handler runs")
				dl := a.deadLetters(t, 1)
				assert.Equal(t, driver.TypeUndecodable, dl[0].Type())
				info, ok := crossbus.DeadLetterInfoOf(&dl[0])
				require.True(t, ok)
				assert.Contains(t, info.Reason, "undecodable message")
				assert.Contains(t, info.Reason, tc.undecodable)
				return
			}
			require.Equal(t, http.StatusOK, status, "logs: %v", resp.Logs)
			got := a.handled()
			require.Len(t, got, 1)
			tc.check(t, got[0].ev, got[0].attempt)
		})
	}
}

func TestServiceBusTriggerBatch(t *testing.T) {
	a := newApp(t, functions.Function{Name: "Batch", Trigger: functions.ServiceBus, Binding: "messages", Many: true})
	body := `{"Data":{"messages":["\"{\\\"n\\\":1}\"","\"{\\\"n\\\":2}\""]},
	  "Metadata":{"MessageIdArray":["m-1","m-2"],"DeliveryCountArray":[1,3],"ContentTypeArray":["application/json","application/json"],
	  "ApplicationPropertiesArray":[{"cloudEvents_specversion":"1.0","cloudEvents_id":"b-1","cloudEvents_source":"/s","cloudEvents_type":"t.one"},{}]}}`
	a.fail = func(ev *crossbus.Event) error {
		if ev.ID() == "m-2" {
			return errors.New("flaky")
		}
		return nil
	}
	status, resp := a.invoke(t, "Batch", body)
	assert.Equal(t, http.StatusInternalServerError, status, "one event to retry fails the invocation, so the batch is redelivered")
	require.Len(t, resp.Logs, 2)
	assert.Contains(t, resp.Logs[1], "retry")
	got := a.handled()
	require.Len(t, got, 2)
	assert.Equal(t, "b-1", got[0].ev.ID())
	assert.Equal(t, 1, got[0].attempt)
	assert.JSONEq(t, `{"n":1}`, string(got[0].ev.Data()))
	assert.Equal(t, "m-2", got[1].ev.ID(), "the second message has no CloudEvents attributes")
	assert.Equal(t, 3, got[1].attempt)
}

func TestEventGridTriggerPayloads(t *testing.T) {
	egEvent := `{"id":"blob-1","topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
	  "subject":"/blobServices/default/containers/c/blobs/a.png","eventType":"Microsoft.Storage.BlobCreated",
	  "eventTime":"2026-11-29T10:15:30.1234567Z","data":{"api":"PutBlob"},"dataVersion":"1.0","metadataVersion":"1"}`
	ceEvent := `{"specversion":"1.0","id":"ce-1","source":"/orders","type":"com.example.order.placed","datacontenttype":"application/json","data":{"n":1}}`
	encoded, _ := json.Marshal(egEvent)
	for _, tc := range []struct{ name, data, wantID, wantType string }{
		{"Event Grid schema object", egEvent, "blob-1", "Microsoft.Storage.BlobCreated"},
		{"CloudEvents schema object", ceEvent, "ce-1", "com.example.order.placed"},
		{"Event Grid schema as a string", string(encoded), "blob-1", "Microsoft.Storage.BlobCreated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			body := `{"Data":{"event":` + tc.data + `},"Metadata":{"sys":{"MethodName":"Thumbnails"}}}`
			status, resp := a.invoke(t, "Thumbnails", body)
			require.Equal(t, http.StatusOK, status, "logs: %v", resp.Logs)
			got := a.handled()
			require.Len(t, got, 1)
			assert.Equal(t, tc.wantID, got[0].ev.ID())
			assert.Equal(t, tc.wantType, got[0].ev.Type())
			assert.Equal(t, 1, got[0].attempt)
		})
	}
}

// An Event Grid trigger event that is a JSON object but not a valid event
// is dead-lettered by the portable layer; the invocation succeeds.
func TestEventGridTriggerUndecodableEventIsDeadLettered(t *testing.T) {
	a := newApp(t)
	status, resp := a.invoke(t, "Thumbnails", `{"Data":{"event":{"specversion":"1.0","id":"ce-9","source":"/orders"}},"Metadata":{}}`)
	require.Equal(t, http.StatusOK, status, "logs: %v", resp.Logs)
	assert.Empty(t, a.handled())
	dl := a.deadLetters(t, 1)
	assert.Equal(t, "ce-9", dl[0].ID())
	assert.Equal(t, "/orders", dl[0].Source())
	assert.Equal(t, driver.TypeUndecodable, dl[0].Type())
	status, _ = a.invoke(t, "Thumbnails", `{"Data":{"event":[1,2]},"Metadata":{}}`)
	assert.Equal(t, http.StatusBadRequest, status, "not an event at all")
}

func TestFunctionsOutcomes(t *testing.T) {
	a := newApp(t)
	invocation := func(count int) string {
		return strings.Replace(sbBinaryInvocation, `"DeliveryCount": "2"`, `"DeliveryCount": `+string(rune('0'+count)), 1)
	}
	a.fail = func(*crossbus.Event) error { return errors.New("ledger unavailable") }
	status, resp := a.invoke(t, "Billing", invocation(1))
	assert.Equal(t, http.StatusInternalServerError, status, "a retryable failure fails the invocation so the trigger retries")
	assert.Contains(t, resp.Logs[0], "nacked")

	status, _ = a.invoke(t, "Billing", invocation(maxAttempts))
	assert.Equal(t, http.StatusOK, status, "the last attempt dead-letters and succeeds")
	dl := a.deadLetters(t, 1)[0]
	info, ok := crossbus.DeadLetterInfoOf(&dl)
	require.True(t, ok)
	assert.Contains(t, info.Reason, "ledger unavailable")
	assert.Equal(t, maxAttempts, info.Attempts)

	a.fail = func(*crossbus.Event) error { return crossbus.Permanent(errors.New("bad order")) }
	status, _ = a.invoke(t, "Billing", invocation(1))
	assert.Equal(t, http.StatusOK, status, "a permanent failure dead-letters at once")
	dl = a.deadLetters(t, 1)[0]
	info, _ = crossbus.DeadLetterInfoOf(&dl)
	assert.Contains(t, info.Reason, "bad order")

	resp2, err := http.Get(a.srv.URL + "/Billing")
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp2.StatusCode)
	resp2, err = http.Post(a.srv.URL+"/Unknown", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp2.StatusCode)
}

func TestRegisterValidatesFunctions(t *testing.T) {
	b, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	require.NoError(t, err)
	ep, err := b.NewEndpoint("topic", "sub", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }), crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	h, err := functions.NewHandler(functions.Options{Auth: functions.LoopbackOnly{}})
	require.NoError(t, err)
	for _, tc := range []struct {
		f    functions.Function
		want string
	}{
		{functions.Function{Trigger: functions.ServiceBus, Binding: "m", Endpoint: ep}, "name"},
		{functions.Function{Name: "a/b", Trigger: functions.ServiceBus, Binding: "m", Endpoint: ep}, "path segment"},
		{functions.Function{Name: "F", Binding: "m", Endpoint: ep}, "Trigger"},
		{functions.Function{Name: "F", Trigger: functions.EventGrid, Endpoint: ep}, "Binding"},
		{functions.Function{Name: "F", Trigger: functions.EventGrid, Binding: "e"}, "Endpoint"},
		{functions.Function{Name: "F", Trigger: functions.ServiceBus, Binding: "m", Endpoint: ep, DataType: "stream"}, "DataType"},
		{functions.Function{Name: "F", Trigger: functions.EventGrid, Binding: "e", Endpoint: ep, Many: true}, "cardinality"},
	} {
		err := h.Register(tc.f)
		require.ErrorIs(t, err, crossbus.ErrInvalidOption)
		assert.Contains(t, err.Error(), tc.want)
	}
	require.NoError(t, h.Register(functions.Function{Name: "F", Trigger: functions.EventGrid, Binding: "e", Endpoint: ep}))
	require.ErrorIs(t, h.Register(functions.Function{Name: "f", Trigger: functions.EventGrid, Binding: "e", Endpoint: ep}), crossbus.ErrInvalidOption, "names are case-insensitive")
}

func TestListenAddressFollowsTheFunctionsHost(t *testing.T) {
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", "")
	assert.Equal(t, "127.0.0.1:8080", functions.ListenAddress())
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", "36123")
	assert.Equal(t, "127.0.0.1:36123", functions.ListenAddress(), "the loopback interface only, where the host invokes")
}
