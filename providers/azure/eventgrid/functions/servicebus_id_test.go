package functions_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/functions"
	"github.com/crossbus/crossbus/providers/memory"
)

// Messages the host passes without MessageId and SequenceNumber each get an
// id of their own, so the idempotency middleware runs every one of them;
// a redelivery of one keeps its id, so it is recognised.
func TestServiceBusMessagesWithoutIdsGetIdsOfTheirOwn(t *testing.T) {
	h, err := functions.NewHandler(functions.Options{Auth: functions.LoopbackOnly{}})
	require.NoError(t, err)
	b, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var mu sync.Mutex
	var handled []string
	ep, err := b.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		handled = append(handled, e.ID()+" "+string(e.Data()))
		mu.Unlock()
		return nil
	}), crossbus.WithDeadLetterTopic("dead"), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	require.NoError(t, err)
	require.NoError(t, h.Register(functions.Function{Name: "One", Trigger: functions.ServiceBus, Binding: "message", Endpoint: ep, Entity: "orders"}))
	require.NoError(t, h.Register(functions.Function{Name: "Many", Trigger: functions.ServiceBus, Binding: "messages", Endpoint: ep, Entity: "orders", Many: true}))
	app := &app{h: h, srv: httptest.NewServer(h)}
	t.Cleanup(app.srv.Close)

	invoke := func(function, body string) {
		t.Helper()
		status, resp := app.invoke(t, function, body)
		require.Equal(t, http.StatusOK, status, "%v", resp.Logs)
	}
	reset := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := handled
		handled = nil
		return out
	}

	// Single messages: different ones are all handled, a redelivery is not.
	invoke("One", `{"Data":{"message":"first"},"Metadata":{"ContentType":"text/plain","DeliveryCount":1}}`)
	invoke("One", `{"Data":{"message":"second"},"Metadata":{"ContentType":"text/plain","DeliveryCount":1}}`)
	invoke("One", `{"Data":{"message":"first"},"Metadata":{"ContentType":"text/plain","DeliveryCount":2}}`)
	got := reset()
	require.Len(t, got, 2, "the redelivery of the first message is a duplicate: %v", got)
	assert.Contains(t, got[1], " second")
	first, second := strings.Fields(got[0])[0], strings.Fields(got[1])[0]
	assert.NotEqual(t, first, second)
	assert.True(t, strings.HasPrefix(first, "orders/sha256-"), first)

	// A batch: different messages, and two identical ones, are all handled.
	invoke("Many", `{"Data":{"messages":["a","b","b"]},"Metadata":{"ContentTypeArray":["text/plain","text/plain","text/plain"],
	  "EnqueuedTimeUtcArray":["2026-11-29T10:00:00Z","2026-11-29T10:00:01Z","2026-11-29T10:00:01Z"]}}`)
	got = reset()
	require.Len(t, got, 3, "%v", got)
	ids := map[string]bool{}
	for _, g := range got {
		ids[strings.Fields(g)[0]] = true
	}
	assert.Len(t, ids, 3, "three ids: %v", got)
	assert.True(t, strings.HasSuffix(strings.Fields(got[2])[0], "#2"), "the second of two identical messages: %v", got)

	// The same batch redelivered: every message is recognised.
	invoke("Many", `{"Data":{"messages":["a","b","b"]},"Metadata":{"ContentTypeArray":["text/plain","text/plain","text/plain"],
	  "EnqueuedTimeUtcArray":["2026-11-29T10:00:00Z","2026-11-29T10:00:01Z","2026-11-29T10:00:01Z"],"DeliveryCountArray":[2,2,2]}}`)
	assert.Empty(t, reset())

	// A SequenceNumber still names the message.
	invoke("One", `{"Data":{"message":"third"},"Metadata":{"ContentType":"text/plain","SequenceNumber":42}}`)
	got = reset()
	require.Len(t, got, 1)
	assert.Equal(t, "orders/42 third", got[0])
}
