package eventgrid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
)

func TestNamespaceRoundTripsEveryKindOfEvent(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)

	full := crossbus.NewEvent("com.example.order.placed", "https://example.com/shop")
	full.SetSubject("orders/42")
	full.SetDataSchema("https://example.com/schemas/order.json")
	full.SetTime(time.Date(2026, 11, 29, 12, 30, 45, 123456789, time.UTC))
	require.NoError(t, crossbus.SetData(&full, map[string]any{"id": 42, "items": []string{"a", "b"}}))
	full.SetExtension("tenant", "acme")
	full.SetExtension("priority", int32(7))
	full.SetExtension("urgent", true)
	full.SetExtension(crossbus.ExtPartitionKey, "customer-9")

	binary := crossbus.NewEvent("com.example.blob", "/blobs")
	raw := make([]byte, 256)
	for i := range raw {
		raw[i] = byte(i)
	}
	require.NoError(t, crossbus.SetData(&binary, raw))

	text := crossbus.NewEvent("com.example.note", "/notes")
	require.NoError(t, crossbus.SetData(&text, "héllo \"world\"\n"))

	xml := crossbus.NewEvent("com.example.doc", "/docs")
	xml.SetDataContentType("application/xml")
	require.NoError(t, crossbus.SetData(&xml, []byte("<a>1</a>")))

	noData := crossbus.NewEvent("com.example.ping", "/ping")

	b := newBus(t, ns)
	want := []crossbus.Event{full, binary, text, xml, noData}
	require.NoError(t, b.Publish(ctx, topic, &full, &binary, &text, &xml, &noData))

	ds := receive(t, ctx, ns, topic, sub, len(want))
	got := map[string]*crossbus.Event{}
	for _, d := range ds {
		assert.Equal(t, 1, d.Attempt(), "first delivery")
		got[d.Event().ID()] = d.Event()
		require.NoError(t, d.Ack(ctx))
	}
	for _, w := range want {
		g := got[w.ID()]
		require.NotNil(t, g, "event %s (%s) not received", w.ID(), w.Type())
		assert.Equal(t, w.Type(), g.Type())
		assert.Equal(t, w.Source(), g.Source())
		assert.Equal(t, w.Subject(), g.Subject())
		assert.Equal(t, w.DataSchema(), g.DataSchema())
		assert.True(t, w.Time().Equal(g.Time()), "time %v != %v", w.Time(), g.Time())
		assert.Equal(t, w.DataContentType(), g.DataContentType())
		assert.Equal(t, w.Data(), g.Data(), "data of %s", w.Type())
		assert.Equal(t, len(w.Extensions()), len(g.Extensions()), "extensions of %s: %v", w.Type(), g.Extensions())
		for name := range w.Extensions() {
			assert.Equal(t, crossbus.ExtensionString(&w, name), crossbus.ExtensionString(g, name), "extension %s", name)
		}
	}
	assert.Equal(t, int32(7), got[full.ID()].Extensions()["priority"], "integer extensions stay integers")
	assert.Zero(t, srv.Backlog(topic, sub), "every event acknowledged")
	assert.Equal(t, len(want), srv.Stats().Acknowledged)
}

// The Azure SDK's own clients and crossbus read each other's events.
func TestNamespaceInteroperatesWithAzureSDKClients(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	co := srv.ClientOptions()

	// Azure SDK sender -> crossbus receiver.
	sender, err := aznamespaces.NewSenderClientWithSharedKeyCredential(srv.Endpoint(), topic, azcore.NewKeyCredential(srv.Key()),
		&aznamespaces.SenderClientOptions{ClientOptions: co})
	require.NoError(t, err)
	azEv, err := messaging.NewCloudEvent("/azure-sdk", "com.example.sdk", map[string]string{"from": "sdk"},
		&messaging.CloudEventOptions{DataContentType: to.Ptr("application/json"), Subject: to.Ptr("s1"),
			Extensions: map[string]any{"tenant": "acme"}})
	require.NoError(t, err)
	_, err = sender.SendEvent(ctx, &azEv, nil)
	require.NoError(t, err)
	d := receive(t, ctx, ns, topic, sub, 1)[0]
	assert.Equal(t, azEv.ID, d.Event().ID())
	assert.Equal(t, "s1", d.Event().Subject())
	assert.JSONEq(t, `{"from":"sdk"}`, string(d.Event().Data()))
	assert.Equal(t, "acme", crossbus.ExtensionString(d.Event(), "tenant"))
	require.NoError(t, d.Ack(ctx))

	// crossbus publisher -> Azure SDK receiver.
	ev := jsonEvent(t, 5)
	ev.SetExtension("tenant", "globex")
	require.NoError(t, newBus(t, ns).Publish(ctx, topic, ev))
	rc, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(srv.Endpoint(), topic, sub, azcore.NewKeyCredential(srv.Key()),
		&aznamespaces.ReceiverClientOptions{ClientOptions: co})
	require.NoError(t, err)
	res, err := rc.ReceiveEvents(ctx, &aznamespaces.ReceiveEventsOptions{MaxEvents: to.Ptr[int32](1), MaxWaitTime: to.Ptr[int32](10)})
	require.NoError(t, err)
	require.Len(t, res.Details, 1)
	got := res.Details[0].Event
	assert.Equal(t, ev.ID(), got.ID)
	assert.Equal(t, "application/json", *got.DataContentType)
	assert.JSONEq(t, `{"n":5}`, string(got.Data.([]byte)), "JSON data travels as a JSON value, not base64")
	assert.Equal(t, "globex", got.Extensions["tenant"])
	assert.Equal(t, int32(1), *res.Details[0].BrokerProperties.DeliveryCount)
	ack, err := rc.AcknowledgeEvents(ctx, []string{*res.Details[0].BrokerProperties.LockToken}, nil)
	require.NoError(t, err)
	assert.Len(t, ack.SucceededLockTokens, 1)
}

func TestReleaseDelayRoundsUpToAnAllowedValue(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want aznamespaces.ReleaseDelay
	}{
		{0, "0"}, {-time.Second, "0"}, {time.Millisecond, "10"}, {10 * time.Second, "10"},
		{10*time.Second + 1, "60"}, {time.Minute, "60"}, {2 * time.Minute, "600"}, {10 * time.Minute, "600"},
		{11 * time.Minute, "3600"}, {time.Hour, "3600"}, {48 * time.Hour, "3600"},
	} {
		assert.Equal(t, tc.want, eventgrid.ReleaseDelay(tc.in), "%v", tc.in)
	}
}

func TestNamespaceNackReleasesWithDelayAndRaisesAttempt(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	require.NoError(t, newBus(t, ns).Publish(ctx, topic, jsonEvent(t, 1)))
	r, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(ctx)

	d := receiveFrom(t, ctx, r, 1)[0]
	released := time.Now()
	require.NoError(t, d.Nack(ctx, 3*time.Second)) // rounds up to 10 s, scaled to 1 s
	d2 := receiveFrom(t, ctx, r, 1)[0]
	assert.GreaterOrEqual(t, time.Since(released), time.Duration(float64(10*time.Second)*testReleaseScale), "not redelivered before the release delay")
	assert.Equal(t, d.Event().ID(), d2.Event().ID())
	assert.Equal(t, 2, d2.Attempt(), "the delivery count is the attempt")
	require.NoError(t, d2.Nack(ctx, 0))
	d3 := receiveFrom(t, ctx, r, 1)[0]
	assert.Equal(t, 3, d3.Attempt())
	require.NoError(t, d3.Ack(ctx))
	assert.Equal(t, map[int]int{10: 1, 0: 1}, srv.Stats().ReleaseDelays)

	err = d3.Ack(ctx)
	require.Error(t, err, "a delivery settles once")
	assert.Contains(t, err.Error(), "already acknowledged")
}

func TestNamespaceExpiredLockRedeliversAndLosesTheOldToken(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{LockDuration: 200 * time.Millisecond})
	ctx := testCtx(t)
	require.NoError(t, newBus(t, ns).Publish(ctx, topic, jsonEvent(t, 1)))
	r, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(ctx)

	first := receiveFrom(t, ctx, r, 1)[0]
	second := receiveFrom(t, ctx, r, 1)[0] // after the lock ran out
	assert.Equal(t, first.Event().ID(), second.Event().ID())
	assert.Equal(t, 2, second.Attempt())
	err = first.Ack(ctx)
	require.ErrorIs(t, err, eventgrid.ErrLockLost, "the first consumer's lock is gone")
	require.NoError(t, second.Ack(ctx))
	assert.Zero(t, srv.Backlog(topic, sub))
}

func TestNamespaceExtendLeaseKeepsTheEventLocked(t *testing.T) {
	srv := newServer(t)
	o := namespaceOptions(srv)
	o.LockDuration = 300 * time.Millisecond
	ns := newNamespace(t, o)
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{LockDuration: 300 * time.Millisecond})
	ctx := testCtx(t)
	require.NoError(t, newBus(t, ns).Publish(ctx, topic, jsonEvent(t, 1)))
	d := receive(t, ctx, ns, topic, sub, 1)[0]
	ext, ok := d.(driver.LeaseExtender)
	require.True(t, ok, "deliveries extend their lease")
	for range 6 { // 600 ms, twice the lock duration
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, ext.ExtendLease(ctx, time.Second))
	}
	require.NoError(t, d.Ack(ctx), "still locked after twice the lock duration")
	assert.GreaterOrEqual(t, srv.Stats().Renewed, 6)
	assert.Error(t, ext.ExtendLease(ctx, time.Second), "no renewal after the ack")
}

// A sweep over many held deliveries renews them in a few batched requests.
func TestNamespaceExtendLeaseRenewsInBatches(t *testing.T) {
	srv := newServer(t)
	o := namespaceOptions(srv)
	// A lock long enough that receiving 250 events on a loaded machine
	// (the race detector, parallel packages) does not outlast it.
	o.LockDuration = 3 * time.Second
	ns := newNamespace(t, o)
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{LockDuration: 3 * time.Second})
	ctx := testCtx(t)
	const n = 250
	require.NoError(t, ns.Publish(ctx, topic, jsonEvents(t, n)))
	ds := receive(t, ctx, ns, topic, sub, n)
	for round := range 6 { // 3.6 s, longer than the lock duration
		time.Sleep(600 * time.Millisecond)
		for _, d := range ds {
			require.NoError(t, d.(driver.LeaseExtender).ExtendLease(ctx, 3*time.Second), "round %d", round)
		}
	}
	st := srv.Stats()
	assert.GreaterOrEqual(t, st.Renewed, 6*n, "every lock renewed every round")
	assert.Equal(t, 100, st.MaxLockTokens, "in requests of 100 tokens")
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, d.Ack(ctx))
		}()
	}
	wg.Wait()
	assert.Zero(t, srv.Backlog(topic, sub))
}

func TestNamespaceDeadLetterRejectsOnlyWhenNative(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{DeadLetter: true})

	plain := newNamespace(t, namespaceOptions(srv))
	assert.False(t, plain.Capabilities().NativeDeadLetter)
	require.NoError(t, newBus(t, plain).Publish(ctx, topic, jsonEvent(t, 1)))
	d := receive(t, ctx, plain, topic, sub, 1)[0]
	require.ErrorIs(t, d.DeadLetter(ctx, crossbus.DeadLetterInfo{Reason: "bad"}), crossbus.ErrNotSupported)
	require.NoError(t, d.Nack(ctx, 0), "still settleable after the refusal")

	o := namespaceOptions(srv)
	o.NativeDeadLetter = true
	native := newNamespace(t, o)
	assert.True(t, native.Capabilities().NativeDeadLetter)
	d = receive(t, ctx, native, topic, sub, 1)[0]
	require.NoError(t, d.DeadLetter(ctx, crossbus.DeadLetterInfo{Reason: "bad"}))
	dls := srv.DeadLetters(topic, sub)
	require.Len(t, dls, 1)
	assert.Equal(t, "Rejected", dls[0].Reason)
	assert.Equal(t, 2, dls[0].DeliveryCount)
	assert.Zero(t, srv.Backlog(topic, sub))
}

func TestNamespaceMaxDeliveryCountDeadLettersOnTheServer(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{MaxDeliveryCount: 2, DeadLetter: true})
	ctx := testCtx(t)
	require.NoError(t, newBus(t, ns).Publish(ctx, topic, jsonEvent(t, 1)))
	r, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(ctx)
	for attempt := 1; attempt <= 2; attempt++ {
		d := receiveFrom(t, ctx, r, 1)[0]
		require.Equal(t, attempt, d.Attempt())
		require.NoError(t, d.Nack(ctx, 0))
	}
	dls := srv.DeadLetters(topic, sub)
	require.Len(t, dls, 1)
	assert.Equal(t, "MaxDeliveryCountExceeded", dls[0].Reason)
}

func TestNamespacePublishIsolatesEventsEventGridRefuses(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	srv.RejectEvents(func(ev map[string]any) string {
		if ev["type"] == "com.example.poison" {
			return "type com.example.poison is not allowed"
		}
		return ""
	})
	evs := jsonEvents(t, 10)
	for _, i := range []int{3, 7} {
		evs[i].SetType("com.example.poison")
	}
	err := newBus(t, ns).Publish(ctx, topic, evs...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{3, 7}, pe.FailedIndexes())
	assert.Contains(t, err.Error(), "com.example.poison is not allowed", "Event Grid's reason is kept")

	ds := receive(t, ctx, ns, topic, sub, 8)
	seen := map[string]int{}
	for _, d := range ds {
		seen[d.Event().ID()]++
		require.NoError(t, d.Ack(ctx))
	}
	for i, ev := range evs {
		if i == 3 || i == 7 {
			assert.Zero(t, seen[ev.ID()], "refused event %d was not published", i)
		} else {
			assert.Equal(t, 1, seen[ev.ID()], "event %d published exactly once", i)
		}
	}
	// 10 -> 5+5 -> (2+3)+(2+3) -> ... : far fewer requests than events.
	assert.Less(t, srv.Stats().PublishRequests, 20)
}

func TestNamespacePublishBatchesWithinEventGridLimits(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, _ := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)

	require.NoError(t, ns.Publish(ctx, topic, jsonEvents(t, 2500)))
	assert.Equal(t, 3, srv.Stats().PublishRequests, "1,000 events per request")

	big := make([]*crossbus.Event, 5)
	for i := range big {
		ev := crossbus.NewEvent("com.example.big", "/big")
		require.NoError(t, crossbus.SetData(&ev, bytes.Repeat([]byte("x"), 300_000)))
		big[i] = &ev
	}
	before := srv.Stats().PublishRequests
	require.NoError(t, ns.Publish(ctx, topic, big))
	assert.Equal(t, 3, srv.Stats().PublishRequests-before, "at most 1 MiB of JSON per request (base64 makes each event ~400 KB)")
	assert.Equal(t, 2505, srv.Stats().PublishedEvents)
}

func TestNamespaceRefusesEventsOverOneMiBOfJSON(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, _ := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	// 900 KB of binary data passes the size check on its raw bytes but is
	// ~1.2 MB once base64-encoded in the JSON event Event Grid counts.
	big := crossbus.NewEvent("com.example.big", "/big")
	require.NoError(t, crossbus.SetData(&big, bytes.Repeat([]byte{0xff}, 900_000)))
	small := jsonEvent(t, 1)
	err := newBus(t, ns).Publish(ctx, topic, small, &big)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{1}, pe.FailedIndexes())
	require.ErrorIs(t, err, crossbus.ErrTooLarge)
	var se *crossbus.SizeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, eventgrid.MaxEventBytes, se.Limit)
	assert.Greater(t, se.Size, 1_200_000)
	assert.Equal(t, 1, srv.Stats().PublishedEvents, "the small event went")
}

func TestNamespaceErrorsMatchCrossbusSentinels(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)

	err := ns.Publish(ctx, "never-created", []*crossbus.Event{jsonEvent(t, 1)})
	require.ErrorIs(t, err, crossbus.ErrTopicNotFound)
	_, err = ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: "never-created"})
	require.ErrorIs(t, err, crossbus.ErrSubscriptionNotFound)

	o := namespaceOptions(srv)
	o.Key = "wrong"
	wrong := newNamespace(t, o)
	err = wrong.Publish(ctx, topic, []*crossbus.Event{jsonEvent(t, 1)})
	require.ErrorIs(t, err, eventgrid.ErrUnauthorized)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re, "the Azure SDK error stays inspectable")
	assert.Equal(t, http.StatusUnauthorized, re.StatusCode)

	_, err = ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub, AckDeadline: 2 * time.Minute})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "lock duration")
	_, err = ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub, MaxAttempts: 11})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "maxDeliveryCount")
}

// staticToken is an azcore.TokenCredential with a fixed token.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestNamespaceAuthenticatesWithEntraIDTokens(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{VerifyToken: func(tok string) bool { return tok == "good-token" }})
	defer srv.Close()
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	o := namespaceOptions(srv)
	o.Key, o.Credential = "", staticToken("good-token")
	ns := newNamespace(t, o)
	require.NoError(t, ns.Publish(ctx, topic, []*crossbus.Event{jsonEvent(t, 1)}))
	require.NoError(t, receive(t, ctx, ns, topic, sub, 1)[0].Ack(ctx))

	o.Credential = staticToken("bad-token")
	bad := newNamespace(t, o)
	require.ErrorIs(t, bad.Publish(ctx, topic, []*crossbus.Event{jsonEvent(t, 1)}), eventgrid.ErrUnauthorized)
}

func TestNamespaceTransientFailuresAreRetriedByTheSDK(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	srv.FailNext("publish", http.StatusServiceUnavailable, http.StatusTooManyRequests)
	require.NoError(t, ns.Publish(ctx, topic, []*crossbus.Event{jsonEvent(t, 1)}))
	srv.FailNext("acknowledge", http.StatusInternalServerError)
	require.NoError(t, receive(t, ctx, ns, topic, sub, 1)[0].Ack(ctx))
	assert.Equal(t, 3, srv.Stats().PublishRequests)
}

func TestNamespaceSettlesConcurrentAcksInBatches(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	const n = 200
	require.NoError(t, ns.Publish(ctx, topic, jsonEvents(t, n)))
	ds := receive(t, ctx, ns, topic, sub, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.Ack(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st := srv.Stats()
	assert.Equal(t, n, st.Acknowledged)
	assert.Greater(t, st.MaxLockTokens, 1, "concurrent acks share requests")
	assert.LessOrEqual(t, st.MaxLockTokens, 100)
	assert.Zero(t, srv.Backlog(topic, sub))
}

func TestNamespaceCloseEndsABlockedReceive(t *testing.T) {
	srv := newServer(t)
	ns := newNamespace(t, namespaceOptions(srv))
	topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
	ctx := testCtx(t)
	r, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := r.Receive(ctx, make([]driver.Delivery, 4))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the long poll start
	require.NoError(t, r.Close(ctx))
	select {
	case err := <-done:
		require.ErrorIs(t, err, crossbus.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Receive still blocked after Close")
	}
	_, err = r.Receive(ctx, make([]driver.Delivery, 1))
	require.ErrorIs(t, err, crossbus.ErrClosed)

	cctx, cancel := context.WithCancel(ctx)
	r2, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r2.Close(ctx)
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err = r2.Receive(cctx, make([]driver.Delivery, 1))
	require.ErrorIs(t, err, context.Canceled)
}

// An event in a receive result that is not a valid CloudEvent is handed to
// the portable layer as undecodable, which dead-letters it: by reject with a
// native dead-letter destination, else to the route's dead-letter topic. The
// valid events of the same result are delivered.
func TestNamespaceUndecodableEventsAreDeadLetteredByTheCore(t *testing.T) {
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) {
			srv := newServer(t)
			o := namespaceOptions(srv)
			o.NativeDeadLetter = native
			ns := newNamespace(t, o)
			topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{DeadLetter: true})
			ctx := testCtx(t)
			// A text event whose data is an object: valid for Event Grid, but
			// its data cannot be the string text/plain requires.
			sender, err := aznamespaces.NewSenderClientWithSharedKeyCredential(srv.Endpoint(), topic, azcore.NewKeyCredential(srv.Key()),
				&aznamespaces.SenderClientOptions{ClientOptions: srv.ClientOptions()})
			require.NoError(t, err)
			odd, err := messaging.NewCloudEvent("/odd", "com.example.odd", json.RawMessage(`{"a":1}`),
				&messaging.CloudEventOptions{DataContentType: to.Ptr("text/plain")})
			require.NoError(t, err)
			_, err = sender.SendEvent(ctx, &odd, nil)
			require.NoError(t, err)
			good := jsonEvent(t, 1)
			require.NoError(t, ns.Publish(ctx, topic, []*crossbus.Event{good}))

			ds := receive(t, ctx, ns, topic, sub, 2)
			u, ok := ds[0].(driver.Undecodable)
			require.True(t, ok)
			require.Error(t, u.DecodeError(), "the odd event comes first, undecodable")
			assert.Equal(t, driver.TypeUndecodable, ds[0].Event().Type())
			assert.Equal(t, odd.ID, ds[0].Event().ID())
			assert.Equal(t, "/odd", ds[0].Event().Source())
			assert.Contains(t, string(ds[0].Event().Data()), `"data":{"a":1}`, "the event as it arrived")
			assert.NoError(t, ds[1].(driver.Undecodable).DecodeError())
			assert.Equal(t, good.ID(), ds[1].Event().ID())
			for _, d := range ds {
				require.NoError(t, d.Nack(ctx, 0))
			}

			b := newBus(t, ns)
			dlTopic := uniqueName("dead")
			require.NoError(t, srv.CreateTopic(dlTopic))
			require.NoError(t, srv.CreateSubscription(dlTopic, "reader", egtest.SubscriptionConfig{}))
			s := newSink()
			_, err = b.Subscribe(ctx, topic, sub, s, crossbus.WithDeadLetterTopic(dlTopic))
			require.NoError(t, err)
			evs := s.waitFor(t, 1)
			assert.Equal(t, good.ID(), evs[0].ID())
			if native {
				require.Eventually(t, func() bool { return len(srv.DeadLetters(topic, sub)) == 1 }, 10*time.Second, 10*time.Millisecond)
				dls := srv.DeadLetters(topic, sub)
				assert.Equal(t, "Rejected", dls[0].Reason, "rejected by the core's DeadLetter")
				assert.Contains(t, string(dls[0].Event), odd.ID)
			} else {
				dl := receive(t, ctx, ns, dlTopic, "reader", 1)[0]
				assert.Equal(t, driver.TypeUndecodable, dl.Event().Type())
				info, ok := crossbus.DeadLetterInfoOf(dl.Event())
				require.True(t, ok)
				assert.Contains(t, info.Reason, "undecodable message")
				assert.Equal(t, sub, info.Subscription)
				assert.Empty(t, srv.DeadLetters(topic, sub))
			}
			time.Sleep(50 * time.Millisecond)
			evs, _ = s.handled()
			assert.Len(t, evs, 1, "only the valid event reached the handler")
		})
	}
}

// Receive errors that retrying cannot fix stop the subscription with the
// sentinel that says why (404: the event subscription is gone; 401 and 403:
// refused credentials or role); other statuses are retried.
func TestNamespaceReceiveErrorsStopOrRetryByStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		stops  error
	}{
		{http.StatusNotFound, crossbus.ErrSubscriptionNotFound},
		{http.StatusUnauthorized, crossbus.ErrUnauthorized},
		{http.StatusForbidden, crossbus.ErrUnauthorized},
		{http.StatusServiceUnavailable, nil},
		{http.StatusTooManyRequests, nil},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := newServer(t)
			ns := newNamespace(t, namespaceOptions(srv))
			topic, sub := topicWithSub(t, srv, egtest.SubscriptionConfig{})
			ctx := testCtx(t)
			statuses := []int{tc.status}
			if tc.stops != nil {
				statuses = []int{tc.status, tc.status, tc.status, tc.status, tc.status, tc.status}
			}
			srv.FailNext("receive", statuses...)
			b := newBus(t, ns)
			s := newSink()
			dead := uniqueName("dead")
			require.NoError(t, srv.CreateTopic(dead))
			subscription, err := b.Subscribe(ctx, topic, sub, s, crossbus.WithDeadLetterTopic(dead))
			require.NoError(t, err)
			if tc.stops != nil {
				select {
				case <-subscription.Done():
				case <-time.After(30 * time.Second):
					t.Fatal("the subscription kept retrying an error that retrying cannot fix")
				}
				require.ErrorIs(t, subscription.Err(), tc.stops)
				assert.ErrorContains(t, subscription.Err(), sub)
				return
			}
			ev := jsonEvent(t, 1)
			require.NoError(t, b.Publish(ctx, topic, ev))
			got := s.waitFor(t, 1)
			assert.Equal(t, ev.ID(), got[0].ID())
			assert.NoError(t, subscription.Err())
		})
	}
	assert.ErrorIs(t, eventgrid.ErrUnauthorized, crossbus.ErrUnauthorized)
}
