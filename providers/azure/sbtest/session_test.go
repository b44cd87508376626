package sbtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/azure/sbtest"
)

func inSession(id, b string) *azservicebus.Message {
	return &azservicebus.Message{SessionID: &id, Body: []byte(b)}
}

func TestSessionsDeliverInOrderToTheirOwner(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{RequiresSession: true}))
	e.send("q", inSession("a", "a1"), inSession("b", "b1"), inSession("a", "a2"), inSession("a", "a3"))

	first, err := e.client.AcceptNextSessionForQueue(e.ctx, "q", nil)
	require.NoError(t, err)
	defer first.Close(e.ctx)
	assert.Equal(t, "a", first.SessionID(), "the session with the oldest message comes first")
	assert.True(t, first.LockedUntil().After(time.Now()))
	msgs := e.receiveN(first, 3)
	for i, m := range msgs {
		assert.Equal(t, fmt.Sprintf("a%d", i+1), string(m.Body))
		require.NoError(t, first.CompleteMessage(e.ctx, m, nil))
	}

	second, err := e.client.AcceptNextSessionForQueue(e.ctx, "q", nil)
	require.NoError(t, err)
	defer second.Close(e.ctx)
	assert.Equal(t, "b", second.SessionID(), "a locked session is not handed out twice")

	_, err = e.client.AcceptSessionForQueue(e.ctx, "q", "b", nil)
	require.Error(t, err, "a session has one owner")
	assert.Contains(t, err.Error(), "session-cannot-be-locked")
}

func TestNoSessionAvailableTimesOut(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateTopic("t", sbtest.EntityOptions{}))
	require.NoError(t, e.srv.CreateSubscription("t", "s", sbtest.EntityOptions{RequiresSession: true}))
	ctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
	defer cancel()
	_, err := e.client.AcceptNextSessionForSubscription(ctx, "t", "s", nil)
	var sbErr *azservicebus.Error
	require.ErrorAs(t, err, &sbErr)
	assert.Equal(t, azservicebus.CodeTimeout, sbErr.Code)
}

func TestWaitingAcceptGetsASessionWhenAMessageArrives(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{RequiresSession: true}))
	got := make(chan *azservicebus.SessionReceiver, 1)
	go func() {
		sr, err := e.client.AcceptNextSessionForQueue(e.ctx, "q", nil)
		assert.NoError(t, err)
		got <- sr
	}()
	time.Sleep(200 * time.Millisecond)
	e.send("q", inSession("late", "x"))
	sr := <-got
	require.NotNil(t, sr)
	defer sr.Close(e.ctx)
	assert.Equal(t, "late", sr.SessionID())
	assert.Equal(t, "x", string(e.receiveN(sr, 1)[0].Body))
}

func TestSessionStateAndLockRenewal(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{RequiresSession: true, LockDuration: 5 * time.Second}))
	sr, err := e.client.AcceptSessionForQueue(e.ctx, "q", "s1", nil)
	require.NoError(t, err)
	defer sr.Close(e.ctx)
	state, err := sr.GetSessionState(e.ctx, nil)
	require.NoError(t, err)
	assert.Nil(t, state)
	require.NoError(t, sr.SetSessionState(e.ctx, []byte("step-2"), nil))
	state, err = sr.GetSessionState(e.ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, "step-2", string(state))
	before := sr.LockedUntil()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, sr.RenewSessionLock(e.ctx, nil))
	assert.True(t, sr.LockedUntil().After(before))
}

func TestReleasedSessionReturnsUnsettledMessagesInOrder(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("q", sbtest.EntityOptions{RequiresSession: true}))
	e.send("q", inSession("k", "1"), inSession("k", "2"))
	sr, err := e.client.AcceptSessionForQueue(e.ctx, "q", "k", nil)
	require.NoError(t, err)
	e.receiveN(sr, 2)
	require.NoError(t, sr.Close(e.ctx))
	again, err := e.client.AcceptSessionForQueue(e.ctx, "q", "k", nil)
	require.NoError(t, err)
	defer again.Close(e.ctx)
	msgs := e.receiveN(again, 2)
	assert.Equal(t, "1", string(msgs[0].Body))
	assert.Equal(t, "2", string(msgs[1].Body))
	assert.Equal(t, uint32(2), msgs[0].DeliveryCount, "a lost session lock counts a delivery")
}

func TestSessionEntitiesRefuseTheWrongReceiverKind(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.srv.CreateQueue("sessions", sbtest.EntityOptions{RequiresSession: true}))
	require.NoError(t, e.srv.CreateQueue("plain", sbtest.EntityOptions{}))
	r := e.receiver("sessions", nil)
	_, err := r.PeekMessages(e.ctx, 1, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "requires sessions")
	_, err = e.client.AcceptSessionForQueue(e.ctx, "plain", "x", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not require sessions")
	s, err := e.client.NewSender("sessions", nil)
	require.NoError(t, err)
	err = s.SendMessage(e.ctx, body("no session id"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SessionId")
}
