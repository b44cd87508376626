package nats_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/nats"
)

// TestUndecodableMessageIsDeadLetteredByTheCore publishes a plain NATS
// message (no CloudEvent) to a topic's subject: no handler sees it, and the
// portable layer stores it in the subscription's dead-letter queue as the
// undecodable placeholder, with its payload, headers and the decode error as
// the reason.
func TestUndecodableMessageIsDeadLetteredByTheCore(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	defer bus.Close(ctx)
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", false))
	handled := make(chan string, 10)
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		handled <- e.ID()
		return nil
	}))
	require.NoError(t, err)

	var conn *natsio.Conn
	require.True(t, p.As(&conn))
	js, err := jetstream.New(conn)
	require.NoError(t, err)
	ack, err := js.PublishMsg(ctx, &natsio.Msg{Subject: "orders", Data: []byte("not an event"), Header: natsio.Header{"X-Legacy": {"1", "2"}}})
	require.NoError(t, err)
	good := crossbus.NewEvent("com.example.order", "/t")
	require.NoError(t, bus.Publish(ctx, "orders", &good))
	select {
	case id := <-handled:
		assert.Equal(t, good.ID(), id, "only the CloudEvent reaches the handler")
	case <-time.After(10 * time.Second):
		t.Fatal("the good event was not handled")
	}

	r, err := p.SubscribeDeadLetters(ctx, "orders", "billing")
	require.NoError(t, err)
	defer r.Close(ctx)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, 1)
	n, err := r.Receive(rctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	u, ok := buf[0].(driver.Undecodable)
	require.True(t, ok)
	assert.NoError(t, u.DecodeError(), "the placeholder itself is a CloudEvent")
	dl := buf[0].Event()
	assert.Equal(t, driver.TypeUndecodable, dl.Type())
	assert.Equal(t, "orders-"+strconv.FormatUint(ack.Sequence, 10), dl.ID(), "stream and sequence")
	assert.Equal(t, "/nats/streams/orders", dl.Source())
	assert.Equal(t, "orders", dl.Subject())
	assert.Equal(t, "application/octet-stream", dl.DataContentType())
	assert.Equal(t, "not an event", string(dl.Data()))
	info, ok := crossbus.DeadLetterInfoOf(dl)
	require.True(t, ok)
	assert.Contains(t, info.Reason, "undecodable")
	assert.Contains(t, info.Reason, "not a CloudEvent")
	assert.Equal(t, "orders", info.Topic)
	assert.Equal(t, "billing", info.Subscription)
	assert.Equal(t, 1, info.Attempts)
	var hs map[string]string
	require.NoError(t, json.Unmarshal([]byte(crossbus.ExtensionString(dl, driver.ExtRawHeaders)), &hs))
	assert.Equal(t, "1, 2", hs["X-Legacy"])
	assert.ErrorIs(t, buf[0].DeadLetter(ctx, crossbus.DeadLetterInfo{}), crossbus.ErrNotSupported, "no dead-letter queue of a dead-letter queue")
	require.NoError(t, buf[0].Ack(ctx))
	assert.Error(t, buf[0].Ack(ctx), "a delivery settles once")
}

// TestUndecodableDeadLetterIsHandedOut puts a message that is not a
// CloudEvent straight into a dead-letter queue: its reader returns it as an
// undecodable delivery (nothing is skipped), which can be settled.
func TestUndecodableDeadLetterIsHandedOut(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
	require.NoError(t, err)
	defer p.Close(ctx)
	require.NoError(t, p.CreateSubscription(ctx, "orders", "billing", false))
	r, err := p.SubscribeDeadLetters(ctx, "orders", "billing")
	require.NoError(t, err)
	defer r.Close(ctx)

	var conn *natsio.Conn
	require.True(t, p.As(&conn))
	js, err := jetstream.New(conn)
	require.NoError(t, err)
	_, err = js.PublishMsg(ctx, &natsio.Msg{Subject: nats.DeadLetterTopic("orders", "billing"), Data: []byte{0xff, 0x00}})
	require.NoError(t, err)

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	buf := make([]driver.Delivery, 1)
	n, err := r.Receive(rctx, buf)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	u, ok := buf[0].(driver.Undecodable)
	require.True(t, ok)
	require.ErrorContains(t, u.DecodeError(), "not a CloudEvent")
	assert.Equal(t, driver.TypeUndecodable, buf[0].Event().Type())
	assert.Equal(t, []byte{0xff, 0x00}, buf[0].Event().Data())
	_, isDeadLetter := crossbus.DeadLetterInfoOf(buf[0].Event())
	assert.False(t, isDeadLetter)
	assert.ErrorIs(t, buf[0].DeadLetter(ctx, crossbus.DeadLetterInfo{}), crossbus.ErrNotSupported)
	require.NoError(t, buf[0].Ack(ctx))
}

// TestPublishDeduplicatesByEventIDAndSource re-publishes an event (as a
// publisher retrying after a lost acknowledgement does): the stream keeps
// one copy. An event of another source with the same id is kept.
func TestPublishDeduplicatesByEventIDAndSource(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
	require.NoError(t, err)
	defer p.Close(ctx)
	a := crossbus.NewEvent("com.example.order", "/shop-eu")
	a.SetID("order-1")
	b := crossbus.NewEvent("com.example.order", "/shop-us")
	b.SetID("order-1")
	require.NoError(t, p.Publish(ctx, "orders", []*crossbus.Event{&a}))
	require.NoError(t, p.Publish(ctx, "orders", []*crossbus.Event{&a, &b}))
	var js jetstream.JetStream
	require.True(t, p.As(&js))
	s, err := js.Stream(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), s.CachedInfo().State.Msgs)
}

// TestLeaseExtensionKeepsASlowHandlerTheOwner runs a handler three times
// longer than the ack wait: the lease is extended (InProgress), so the event
// is neither redelivered nor handled twice.
func TestLeaseExtensionKeepsASlowHandlerTheOwner(t *testing.T) {
	srv := startServer(t, "")
	ctx := context.Background()
	p, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), AutoCreate: true})
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	defer bus.Close(ctx)
	require.NoError(t, p.CreateSubscription(ctx, "jobs", "workers", false))
	runs := make(chan int, 10)
	_, err = bus.Subscribe(ctx, "jobs", "workers", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		runs <- info.Attempt
		time.Sleep(3 * time.Second)
		return nil
	}), crossbus.WithAckDeadline(time.Second))
	require.NoError(t, err)
	e := crossbus.NewEvent("com.example.job", "/t")
	require.NoError(t, bus.Publish(ctx, "jobs", &e))
	assert.Equal(t, 1, <-runs)
	select {
	case a := <-runs:
		t.Fatalf("redelivered (attempt %d) while the handler still ran", a)
	case <-time.After(4 * time.Second):
	}
}
