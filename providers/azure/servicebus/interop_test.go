package servicebus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// These tests prove that crossbus and other Service Bus clients agree on the
// wire: the raw SDK writes what the CloudEvents AMQP binding prescribes and
// crossbus reads it, and the reverse.

func TestInteropRawBindingMessageIsReadAsTheCloudEvent(t *testing.T) {
	e := newEnv(t)
	ct, id := "application/json", "raw-1"
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	e.rawSend(&azservicebus.Message{MessageID: &id, ContentType: &ct, Body: []byte(`{"sku":"a-1"}`),
		ApplicationProperties: map[string]any{
			"cloudEvents:specversion": "1.0", // the colon form other SDKs write
			"cloudEvents:id":          "evt-1",
			"cloudEvents:source":      "urn:warehouse",
			"cloudEvents:type":        "com.example.stock.low",
			"cloudEvents:time":        at, // native AMQP timestamp
			"cloudEvents:subject":     "sku/a-1",
			"cloudEvents:level":       int64(3),
		}})
	got := e.consumeOne()
	assert.Equal(t, "evt-1", got.ID(), "the event id comes from cloudEvents:id, not MessageID")
	assert.Equal(t, "urn:warehouse", got.Source())
	assert.Equal(t, "com.example.stock.low", got.Type())
	assert.Equal(t, "sku/a-1", got.Subject())
	assert.True(t, at.Equal(got.Time()))
	assert.Equal(t, "application/json", got.DataContentType())
	assert.JSONEq(t, `{"sku":"a-1"}`, string(got.Data()))
	assert.Equal(t, int32(3), got.Extensions()["level"])
}

func TestInteropCrossbusEventIsBindingConformantForRawReaders(t *testing.T) {
	e := newEnv(t)
	ev := crossbus.NewEvent("com.example.order.placed", "/shop")
	require.NoError(t, crossbus.SetData(&ev, map[string]int{"order": 7}))
	crossbus.SetPartitionKey(&ev, "customer-1")
	ev.SetExtension("tenant", "acme")
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))

	r, err := e.client.NewReceiverForSubscription(e.topic, e.sub, nil)
	require.NoError(t, err)
	defer r.Close(e.ctx)
	msgs, err := r.ReceiveMessages(e.ctx, 1, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, ev.ID(), m.MessageID)
	assert.Equal(t, "application/json", *m.ContentType)
	assert.Equal(t, "customer-1", *m.SessionID)
	assert.JSONEq(t, `{"order":7}`, string(m.Body))
	p := m.ApplicationProperties
	assert.Equal(t, "1.0", p["cloudEvents_specversion"])
	assert.Equal(t, ev.ID(), p["cloudEvents_id"])
	assert.Equal(t, "/shop", p["cloudEvents_source"])
	assert.Equal(t, "com.example.order.placed", p["cloudEvents_type"])
	assert.Equal(t, "acme", p["cloudEvents_tenant"])
	assert.Equal(t, "customer-1", p["cloudEvents_partitionkey"])
	ts, ok := p["cloudEvents_time"].(string)
	require.True(t, ok, "time travels as its canonical string")
	parsed, err := time.Parse(time.RFC3339Nano, ts)
	require.NoError(t, err)
	assert.True(t, ev.Time().Equal(parsed))
	require.NoError(t, r.CompleteMessage(e.ctx, m, nil))
}

func TestInteropForeignMessageBecomesAnEventByTheDocumentedRule(t *testing.T) {
	e := newEnv(t)
	id, subject := "legacy-9", "invoice"
	e.rawSend(&azservicebus.Message{MessageID: &id, Subject: &subject, Body: []byte("raw bytes"),
		ApplicationProperties: map[string]any{"region": "eu"}})
	got := e.consumeOne()
	assert.Equal(t, "legacy-9", got.ID())
	assert.Equal(t, "/"+e.topic, got.Source())
	assert.Equal(t, "com.microsoft.servicebus.message", got.Type())
	assert.Equal(t, "invoice", got.Subject())
	assert.Equal(t, "raw bytes", string(got.Data()))
	assert.Equal(t, "eu", crossbus.ExtensionString(got, "region"))
	assert.False(t, got.Time().IsZero(), "time is the enqueued time")
}

// A message that claims to be a CloudEvent and is not one reaches no
// handler: the receiver hands it over as undecodable, and the portable layer
// moves it to the dead-letter sub-queue with the decode error as the reason;
// read back, it is the placeholder event with the body and properties.
func TestInteropInvalidCloudEventIsDeadLetteredByTheCore(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("sessions=%v", ordered), func(t *testing.T) {
			e := newEnv(t, withSubscription(sbtest.EntityOptions{LockDuration: lockDuration, RequiresSession: ordered}))
			id, session := "broken", "customer-1"
			structuredID := "broken-structured"
			ct := "application/cloudevents+json"
			e.rawSend(&azservicebus.Message{MessageID: &id, Body: []byte("x"), SessionID: &session,
				ApplicationProperties: map[string]any{"cloudEvents_specversion": "1.0", "cloudEvents_source": "/s"}}, // no type
				&azservicebus.Message{MessageID: &structuredID, Body: []byte(`{"specversion":`), SessionID: &session, ContentType: &ct})
			good := crossbus.NewEvent("com.example.ok", "/s")
			crossbus.SetPartitionKey(&good, session)
			require.NoError(t, e.bus.Publish(e.ctx, e.topic, &good))
			var opts []crossbus.RouteOption
			if ordered {
				opts = append(opts, crossbus.WithOrdering())
			}
			rec := newRecorder()
			e.subscribe(rec.handler(nil), opts...)
			rec.wait(t, 1, 20*time.Second)
			dl := e.deadLetters(2)
			byID := map[string]crossbus.Event{}
			for _, d := range dl {
				byID[d.ID()] = d
			}
			for _, want := range []struct{ id, body, reason string }{{"broken", "x", "type"}, {"broken-structured", `{"specversion":`, "structured"}} {
				got, ok := byID[want.id]
				require.True(t, ok, "%s dead-lettered", want.id)
				assert.Equal(t, driver.TypeUndecodable, got.Type())
				assert.Equal(t, "/"+e.topic, got.Source())
				assert.Equal(t, want.body, string(got.Data()), "the body is kept")
				info, ok := crossbus.DeadLetterInfoOf(&got)
				require.True(t, ok)
				assert.Contains(t, info.Reason, "undecodable message")
				assert.Contains(t, info.Reason, want.reason)
				assert.Equal(t, e.topic, info.Topic)
				assert.Equal(t, e.sub, info.Subscription)
				assert.Equal(t, 1, info.Attempts)
			}
			assert.Contains(t, crossbus.ExtensionString(ptr(byID["broken"]), driver.ExtRawHeaders), `"cloudEvents_source":"/s"`)
			time.Sleep(100 * time.Millisecond)
			rec.mu.Lock()
			defer rec.mu.Unlock()
			require.Len(t, rec.events, 1, "only the valid event reaches the handler")
			assert.Equal(t, good.ID(), rec.events[0].ID())
		})
	}
}

func TestInteropColonPrefixOptionWritesTheOtherBindingForm(t *testing.T) {
	e := newEnv(t, withProvider(servicebus.Options{LockDuration: lockDuration, PropertyPrefix: servicebus.PropertyPrefixColon}))
	ev := crossbus.NewEvent("com.example.colon", "/t")
	ev.SetExtension("tenant", "acme")
	require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))
	r, err := e.client.NewReceiverForSubscription(e.topic, e.sub, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	require.NoError(t, err)
	defer r.Close(e.ctx)
	msgs, err := r.ReceiveMessages(e.ctx, 1, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	p := msgs[0].ApplicationProperties
	assert.Equal(t, ev.ID(), p["cloudEvents:id"])
	assert.Equal(t, "acme", p["cloudEvents:tenant"])
	assert.NotContains(t, p, "cloudEvents_id", "one message uses one separator")
	got, err := servicebus.EventFromMessage(msgs[0], e.topic)
	require.NoError(t, err)
	assert.Equal(t, ev.ID(), got.ID())

	_, err = servicebus.New(e.ctx, servicebus.Options{ConnectionString: e.srv.ConnectionString(), PropertyPrefix: "ce-"})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

// The propertyprefix URL parameter selects the prefix a bus opened by URL
// writes; whatever it writes, both prefixes are read.
func TestPropertyPrefixURLParameter(t *testing.T) {
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	require.NoError(t, srv.CreateQueue("jobs", sbtest.EntityOptions{LockDuration: lockDuration}))
	t.Setenv(servicebus.EnvConnectionString, srv.ConnectionString())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ param, want, other string }{
		{"", "cloudEvents_", "cloudEvents:"},
		{"&propertyprefix=cloudEvents_", "cloudEvents_", "cloudEvents:"},
		{"&propertyprefix=cloudEvents:", "cloudEvents:", "cloudEvents_"},
		{"&propertyprefix=cloudEvents%3A", "cloudEvents:", "cloudEvents_"},
	} {
		t.Run(tc.want+tc.param, func(t *testing.T) {
			bus, err := crossbus.Open(ctx, "azuresb://"+srv.Addr()+"?queue=jobs"+tc.param)
			require.NoError(t, err)
			defer bus.Close(ctx)
			ev := crossbus.NewEvent("com.example.job", "/jobs")
			ev.SetExtension("tenant", "acme")
			require.NoError(t, bus.Publish(ctx, "jobs", &ev))
			var client *azservicebus.Client
			require.True(t, bus.As(&client))
			r, err := client.NewReceiverForQueue("jobs", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
			require.NoError(t, err)
			defer r.Close(ctx)
			msgs, err := r.ReceiveMessages(ctx, 1, nil)
			require.NoError(t, err)
			require.Len(t, msgs, 1)
			p := msgs[0].ApplicationProperties
			assert.Equal(t, ev.ID(), p[tc.want+"id"])
			assert.Equal(t, "acme", p[tc.want+"tenant"])
			for k := range p {
				assert.NotContains(t, k, tc.other, "one message uses one prefix")
			}
			got, err := servicebus.EventFromMessage(msgs[0], "jobs")
			require.NoError(t, err)
			assert.Equal(t, ev.ID(), got.ID())
			assert.Equal(t, "acme", crossbus.ExtensionString(got, "tenant"))
		})
	}
	_, err = crossbus.Open(ctx, "azuresb://"+srv.Addr()+"?queue=jobs&propertyprefix=ce-")
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "PropertyPrefix")
}
