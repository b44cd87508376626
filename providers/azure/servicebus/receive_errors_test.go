package servicebus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// A subscription deleted while consumers run stops them with
// ErrSubscriptionNotFound: session-less receivers and session workers alike.
func TestDeletedSubscriptionStopsItsConsumers(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		name := "plain"
		if ordered {
			name = "sessions"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withSubscription(sbtest.EntityOptions{LockDuration: lockDuration, RequiresSession: ordered}))
			var opts []crossbus.RouteOption
			if ordered {
				opts = append(opts, crossbus.WithOrdering())
			}
			rec := newRecorder()
			s := e.subscribe(rec.handler(nil), opts...)
			ev := crossbus.NewEvent("com.example.x", "/t")
			crossbus.SetPartitionKey(&ev, "k")
			require.NoError(t, e.bus.Publish(e.ctx, e.topic, &ev))
			rec.wait(t, 1, 10*time.Second)
			require.NoError(t, e.srv.DeleteSubscription(e.topic, e.sub))
			select {
			case <-s.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("the subscription kept running after it was deleted")
			}
			require.ErrorIs(t, s.Err(), crossbus.ErrSubscriptionNotFound)
			assert.ErrorContains(t, s.Err(), e.topic+"/Subscriptions/"+e.sub)
		})
	}
}

// Credentials Service Bus refuses are ErrUnauthorized, for Subscribe and
// for Publish alike.
func TestRefusedCredentialsAreUnauthorized(t *testing.T) {
	e := newEnv(t)
	cs := strings.Replace(e.srv.ConnectionString(), "SharedAccessKey=", "SharedAccessKey=x", 1)
	p, err := servicebus.New(e.ctx, servicebus.Options{ConnectionString: cs})
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	_, err = p.Subscribe(ctx, driver.SubscriptionSpec{Topic: e.topic, Name: e.sub})
	require.ErrorIs(t, err, crossbus.ErrUnauthorized)
	assert.NotErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
}

// The mapping of receive errors: what retrying cannot fix stops the
// subscription, the rest is retried.
func TestReceiveErrorsMapOntoTheSentinels(t *testing.T) {
	for _, tc := range []struct {
		cond      amqp.ErrCond
		sentinel  error // nil: retried (not fatal)
		permanent bool
	}{
		{amqp.ErrCondNotFound, crossbus.ErrSubscriptionNotFound, false},
		{amqp.ErrCondUnauthorizedAccess, crossbus.ErrUnauthorized, false},
		{"com.microsoft:entity-disabled", nil, true},
		{"com.microsoft:server-busy", nil, false},
		{amqp.ErrCondInternalError, nil, false},
	} {
		t.Run(string(tc.cond), func(t *testing.T) {
			err := servicebus.ReceiveErrorForTest("orders", "billing", &amqp.Error{Condition: tc.cond, Description: "from the broker"})
			assert.ErrorContains(t, err, "orders/Subscriptions/billing")
			var ae *amqp.Error
			assert.True(t, errors.As(err, &ae), "the AMQP error stays reachable")
			if tc.sentinel != nil {
				assert.ErrorIs(t, err, tc.sentinel)
			}
			assert.Equal(t, tc.permanent, crossbus.IsPermanent(err))
			fatal := tc.sentinel != nil || tc.permanent
			for _, s := range []error{crossbus.ErrSubscriptionNotFound, crossbus.ErrTopicNotFound, crossbus.ErrUnauthorized} {
				if !fatal {
					assert.NotErrorIs(t, err, s)
				}
			}
		})
	}
}
