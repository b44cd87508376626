package sbtest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/azure/sbtest"
)

// env is a broker with one SDK client connected to it.
type env struct {
	t      *testing.T
	srv    *sbtest.Server
	client *azservicebus.Client
	ctx    context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, srv: srv, client: client, ctx: ctx}
}

func (e *env) send(entity string, msgs ...*azservicebus.Message) {
	e.t.Helper()
	s, err := e.client.NewSender(entity, nil)
	require.NoError(e.t, err)
	defer s.Close(e.ctx)
	for _, m := range msgs {
		require.NoError(e.t, s.SendMessage(e.ctx, m, nil))
	}
}

func (e *env) receiver(queue string, o *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	e.t.Helper()
	r, err := e.client.NewReceiverForQueue(queue, o)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// receiveN receives exactly n messages (failing the test on timeout).
func (e *env) receiveN(r interface {
	ReceiveMessages(context.Context, int, *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}, n int) []*azservicebus.ReceivedMessage {
	e.t.Helper()
	var out []*azservicebus.ReceivedMessage
	for len(out) < n {
		msgs, err := r.ReceiveMessages(e.ctx, n-len(out), nil)
		require.NoError(e.t, err, "received %d of %d", len(out), n)
		out = append(out, msgs...)
	}
	return out
}

func body(s string) *azservicebus.Message { return &azservicebus.Message{Body: []byte(s)} }

func TestMessageRoundTripsWithServiceBusAnnotations(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("orders", sbtest.EntityOptions{}))
	id, ct, subj, corr, sess := "m-1", "application/json", "order.placed", "c-7", "s-1"
	e.send("orders", &azservicebus.Message{MessageID: &id, ContentType: &ct, Subject: &subj, CorrelationID: &corr,
		SessionID: &sess, Body: []byte(`{"n":1}`), ApplicationProperties: map[string]any{"tenant": "acme", "n": int64(3), "ok": true}})
	before := time.Now()
	m := e.receiveN(e.receiver("orders", nil), 1)[0]
	assert.Equal(t, "m-1", m.MessageID)
	assert.Equal(t, ct, *m.ContentType)
	assert.Equal(t, subj, *m.Subject)
	assert.Equal(t, corr, *m.CorrelationID)
	assert.Equal(t, sess, *m.SessionID)
	assert.Equal(t, `{"n":1}`, string(m.Body))
	assert.Equal(t, map[string]any{"tenant": "acme", "n": int64(3), "ok": true}, m.ApplicationProperties)
	assert.Equal(t, uint32(1), m.DeliveryCount)
	require.NotNil(t, m.SequenceNumber)
	assert.Equal(t, int64(1), *m.SequenceNumber)
	require.NotNil(t, m.EnqueuedTime)
	require.NotNil(t, m.LockedUntil)
	assert.WithinDuration(t, before.Add(60*time.Second), *m.LockedUntil, 5*time.Second, "default lock duration is 60s")
	assert.NotEqual(t, [16]byte{}, m.LockToken)
}

func TestCompleteRemovesAndAbandonRedeliversWithHigherCount(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{}))
	e.send("q", body("a"), body("b"))
	r := e.receiver("q", nil)
	msgs := e.receiveN(r, 2)
	require.NoError(t, r.CompleteMessage(e.ctx, msgs[0], nil))
	require.NoError(t, r.AbandonMessage(e.ctx, msgs[1], &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "busy"}}))
	again := e.receiveN(r, 1)[0]
	assert.Equal(t, string(msgs[1].Body), string(again.Body))
	assert.Equal(t, uint32(2), again.DeliveryCount)
	assert.Equal(t, "busy", again.ApplicationProperties["why"], "abandon merges properties-to-modify")
	require.NoError(t, r.CompleteMessage(e.ctx, again, nil))
	c, err := e.srv.Counts("q")
	require.NoError(t, err)
	assert.Equal(t, sbtest.Counts{}, c)
}

func TestDeadLetterKeepsReasonDescriptionAndProperties(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{}))
	e.send("q", body("poison"))
	r := e.receiver("q", nil)
	m := e.receiveN(r, 1)[0]
	reason, desc := "bad-input", "field x missing"
	require.NoError(t, r.DeadLetterMessage(e.ctx, m, &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &desc,
		PropertiesToModify: map[string]any{"attempts": int64(3)}}))
	dlq := e.receiver("q", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := e.receiveN(dlq, 1)[0]
	assert.Equal(t, "poison", string(d.Body))
	require.NotNil(t, d.DeadLetterReason)
	assert.Equal(t, reason, *d.DeadLetterReason)
	assert.Equal(t, desc, *d.DeadLetterErrorDescription)
	assert.Equal(t, int64(3), d.ApplicationProperties["attempts"])
	require.NoError(t, dlq.CompleteMessage(e.ctx, d, nil))
}

func TestMaxDeliveryCountMovesToDeadLetterQueue(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{MaxDeliveryCount: 2}))
	e.send("q", body("x"))
	r := e.receiver("q", nil)
	for i := 0; i < 2; i++ {
		require.NoError(t, r.AbandonMessage(e.ctx, e.receiveN(r, 1)[0], nil))
	}
	dlq := e.receiver("q", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := e.receiveN(dlq, 1)[0]
	assert.Equal(t, "MaxDeliveryCountExceeded", *d.DeadLetterReason)
	assert.Contains(t, *d.DeadLetterErrorDescription, "2 delivery attempts")
	c, err := e.srv.Counts("q")
	require.NoError(t, err)
	assert.Equal(t, 0, c.Active)
	assert.Equal(t, 1, c.DeadLettered)
}

func TestExpiredLockRedeliversAndLateSettleIsLockLost(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{LockDuration: 300 * time.Millisecond}))
	e.send("q", body("x"))
	r := e.receiver("q", nil)
	first := e.receiveN(r, 1)[0]
	second := e.receiveN(r, 1)[0] // arrives once the first lock expired
	assert.Equal(t, uint32(2), second.DeliveryCount)
	var sbErr *azservicebus.Error
	err := r.CompleteMessage(e.ctx, first, nil)
	require.ErrorAs(t, err, &sbErr)
	assert.Equal(t, azservicebus.CodeLockLost, sbErr.Code)
	require.NoError(t, r.CompleteMessage(e.ctx, second, nil))
}

func TestRenewLockKeepsTheMessage(t *testing.T) {
	e := newEnv(t)
	const lock = 1500 * time.Millisecond
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{LockDuration: lock}))
	e.send("q", body("x"))
	r := e.receiver("q", nil)
	m := e.receiveN(r, 1)[0]
	old := *m.LockedUntil
	start := time.Now()
	for time.Since(start) < 2*lock {
		time.Sleep(lock / 4)
		require.NoError(t, r.RenewMessageLock(e.ctx, m, nil))
	}
	assert.True(t, m.LockedUntil.After(old), "renewal moves LockedUntil")
	require.NoError(t, r.CompleteMessage(e.ctx, m, nil), "still locked after twice its lock duration")
}

func TestTopicFansOutToEverySubscription(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateTopic("t", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("t", "a", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("t", "b", sbtest.EntityOptions{}))
	s, err := e.client.NewSender("t", nil)
	require.NoError(t, err)
	batch, err := s.NewMessageBatch(e.ctx, nil)
	require.NoError(t, err)
	for _, b := range []string{"1", "2", "3"} {
		require.NoError(t, batch.AddMessage(body(b), nil))
	}
	require.NoError(t, s.SendMessageBatch(e.ctx, batch, nil))
	for _, sub := range []string{"a", "b"} {
		r, err := e.client.NewReceiverForSubscription("t", sub, nil)
		require.NoError(t, err)
		msgs := e.receiveN(r, 3)
		for i, m := range msgs {
			assert.Equal(t, string(rune('1'+i)), string(m.Body), "subscription %s keeps send order", sub)
			require.NoError(t, r.CompleteMessage(e.ctx, m, nil))
		}
		_ = r.Close(e.ctx)
	}
}

func TestScheduledMessagesWaitAndCanBeCancelled(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{}))
	s, err := e.client.NewSender("q", nil)
	require.NoError(t, err)
	at := time.Now().Add(2 * time.Second)
	seqs, err := s.ScheduleMessages(e.ctx, []*azservicebus.Message{body("later"), body("cancelled")}, at, nil)
	require.NoError(t, err)
	require.Len(t, seqs, 2)
	require.NoError(t, s.CancelScheduledMessages(e.ctx, seqs[1:], nil))
	soon := at.Add(300 * time.Millisecond)
	require.NoError(t, s.SendMessage(e.ctx, &azservicebus.Message{Body: []byte("annotated"), ScheduledEnqueueTime: &soon}, nil))
	c, err := e.srv.Counts("q")
	require.NoError(t, err)
	assert.Equal(t, 2, c.Scheduled)
	assert.Equal(t, 0, c.Active)
	r := e.receiver("q", nil)
	msgs := e.receiveN(r, 2)
	assert.False(t, time.Now().Before(soon), "scheduled messages appear at their time")
	assert.Equal(t, "later", string(msgs[0].Body))
	assert.Equal(t, "annotated", string(msgs[1].Body))
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	extra, _ := r.ReceiveMessages(ctx, 1, nil)
	assert.Empty(t, extra, "the cancelled message never appears")
}

func TestLargeMessagesSpanFramesAndOversizedAreRefused(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{}))
	big := bytes.Repeat([]byte("0123456789"), 20_000) // 200 KB: several 64 KiB frames each way
	e.send("q", &azservicebus.Message{Body: big})
	m := e.receiveN(e.receiver("q", nil), 1)[0]
	assert.True(t, bytes.Equal(big, m.Body))

	s, err := e.client.NewSender("q", nil)
	require.NoError(t, err)
	batch, err := s.NewMessageBatch(e.ctx, nil)
	require.NoError(t, err)
	err = batch.AddMessage(&azservicebus.Message{Body: make([]byte, 300*1024)}, nil)
	assert.ErrorIs(t, err, azservicebus.ErrMessageTooLarge, "the link's max-message-size is 256 KiB")
}

func TestMissingEntityIsNotFound(t *testing.T) {
	e := newEnv(t)
	s, err := e.client.NewSender("nope", nil)
	require.NoError(t, err)
	err = s.SendMessage(e.ctx, body("x"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "amqp:not-found")
	r, err := e.client.NewReceiverForSubscription("nope", "s", nil)
	require.NoError(t, err)
	_, err = r.PeekMessages(e.ctx, 1, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "could not be found")
	assert.ErrorIs(t, e.srv.CreateSubscription("nope", "s", sbtest.EntityOptions{}), sbtest.ErrNotFound)
	require.NoError(t, e.srv.CreateQueue("dup", sbtest.EntityOptions{}))
	assert.ErrorIs(t, e.srv.CreateTopic("DUP", sbtest.EntityOptions{}), sbtest.ErrExists, "names are case-insensitive")
}

func TestDuplicateDetectionDropsRepeatedMessageIDs(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{DuplicateDetectionWindow: time.Minute}))
	id1, id2 := "same", "other"
	e.send("q", &azservicebus.Message{MessageID: &id1, Body: []byte("1")}, &azservicebus.Message{MessageID: &id1, Body: []byte("2")},
		&azservicebus.Message{MessageID: &id2, Body: []byte("3")})
	c, err := e.srv.Counts("q")
	require.NoError(t, err)
	assert.Equal(t, 2, c.Active)
}

func TestReceiveAndDeleteRemovesOnDelivery(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{}))
	e.send("q", body("x"))
	r := e.receiver("q", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	assert.Equal(t, "x", string(e.receiveN(r, 1)[0].Body))
	c, err := e.srv.Counts("q")
	require.NoError(t, err)
	assert.Equal(t, 0, c.Active)
}

func TestDeferredMessagesAreReceivedBySequenceNumber(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{}))
	e.send("q", body("later"), body("now"))
	r := e.receiver("q", nil)
	msgs := e.receiveN(r, 2)
	require.NoError(t, r.DeferMessage(e.ctx, msgs[0], nil))
	require.NoError(t, r.CompleteMessage(e.ctx, msgs[1], nil))
	peeked, err := r.PeekMessages(e.ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: msgs[0].SequenceNumber})
	require.NoError(t, err)
	require.Len(t, peeked, 1)
	assert.Equal(t, azservicebus.MessageStateDeferred, peeked[0].State)
	got, err := r.ReceiveDeferredMessages(e.ctx, []int64{*msgs[0].SequenceNumber}, nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "later", string(got[0].Body))
	require.NoError(t, r.CompleteMessage(e.ctx, got[0], nil), "settled through $management")
	c, err := e.srv.Counts("q")
	require.NoError(t, err)
	assert.Equal(t, sbtest.Counts{}, c)
}

func TestWrongKeyIsUnauthorized(t *testing.T) {
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	defer srv.Close()
	require.NoError(t, srv.CreateQueue("q", sbtest.EntityOptions{}))
	cs := strings.Replace(srv.ConnectionString(), "SharedAccessKey=", "SharedAccessKey=wrong", 1)
	client, err := azservicebus.NewClientFromConnectionString(cs, nil)
	require.NoError(t, err)
	defer client.Close(context.Background())
	s, err := client.NewSender("q", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.SendMessage(ctx, body("x"), nil)
	var sbErr *azservicebus.Error
	require.True(t, errors.As(err, &sbErr), "got %v", err)
	assert.Equal(t, azservicebus.CodeUnauthorizedAccess, sbErr.Code)
}

// Deleting an entity detaches the receivers attached to it with
// amqp:not-found, which the SDK returns as that *amqp.Error, and sending to
// it or receiving from it again fails the same way.
func TestDeletedEntitiesDetachTheirLinksWithNotFound(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("jobs", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateTopic("orders", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("orders", "billing", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("orders", "shipping", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("orders", "audit", sbtest.EntityOptions{RequiresSession: true}))

	queue := e.receiver("jobs", nil)
	billing, err := e.client.NewReceiverForSubscription("orders", "billing", nil)
	require.NoError(t, err)
	defer billing.Close(context.Background())
	// Attach the links: a receive that ends empty.
	for _, r := range []*azservicebus.Receiver{queue, billing} {
		ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
		_, _ = r.ReceiveMessages(ctx, 1, nil)
		cancel()
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := e.client.AcceptNextSessionForSubscription(e.ctx, "orders", "audit", nil)
		waiting <- err
	}()
	time.Sleep(200 * time.Millisecond) // the accept waits for a session

	require.NoError(t, e.srv.DeleteQueue("jobs"))
	require.NoError(t, e.srv.DeleteSubscription("orders", "billing"))
	require.NoError(t, e.srv.DeleteSubscription("orders", "audit"))
	notFound := func(err error) bool {
		var ae *amqp.Error
		return errors.As(err, &ae) && ae.Condition == amqp.ErrCondNotFound
	}
	for name, r := range map[string]*azservicebus.Receiver{"queue": queue, "subscription": billing} {
		_, err := r.ReceiveMessages(e.ctx, 1, nil)
		require.Error(t, err, name)
		assert.True(t, notFound(err), "%s: %v", name, err)
		assert.Contains(t, err.Error(), "could not be found", name)
	}
	select {
	case err := <-waiting:
		assert.True(t, notFound(err), "waiting session accept: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the session accept kept waiting on a deleted subscription")
	}

	s, err := e.client.NewSender("jobs", nil)
	require.NoError(t, err)
	defer s.Close(context.Background())
	err = s.SendMessage(e.ctx, &azservicebus.Message{Body: []byte("x")}, nil)
	assert.True(t, notFound(err), "send to a deleted queue: %v", err)

	// The other subscription of the topic is untouched.
	e.send("orders", &azservicebus.Message{Body: []byte("still here")})
	shipping, err := e.client.NewReceiverForSubscription("orders", "shipping", nil)
	require.NoError(t, err)
	defer shipping.Close(context.Background())
	got := e.receiveN(shipping, 1)
	assert.Equal(t, "still here", string(got[0].Body))
	c, err := e.srv.Counts("orders/Subscriptions/billing")
	assert.ErrorIs(t, err, sbtest.ErrNotFound)
	assert.Zero(t, c)

	require.NoError(t, e.srv.DeleteTopic("orders"))
	_, err = shipping.ReceiveMessages(e.ctx, 1, nil)
	assert.True(t, notFound(err), "topic deleted with its subscriptions: %v", err)
	ts, err := e.client.NewSender("orders", nil)
	require.NoError(t, err)
	defer ts.Close(context.Background())
	assert.True(t, notFound(ts.SendMessage(e.ctx, &azservicebus.Message{Body: []byte("x")}, nil)), "send to a deleted topic")
	assert.ErrorIs(t, e.srv.DeleteQueue("jobs"), sbtest.ErrNotFound)
	assert.ErrorIs(t, e.srv.DeleteSubscription("orders", "shipping"), sbtest.ErrNotFound)
}
