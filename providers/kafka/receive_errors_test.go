package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/kafka"
)

// login is the SASL/PLAIN login of a test user.
func login(user string) kgo.Opt {
	return kgo.SASL(plain.Plain(func(context.Context) (plain.Auth, error) {
		return plain.Auth{User: user, Pass: user}, nil
	}))
}

// subscribeWith opens a bus with o and subscribes to events/billing (which
// the admin provider created); it returns the subscription and a counter of
// handled events.
func subscribeWith(t *testing.T, admin *kafka.Provider, o kafka.Options) (*crossbus.Bus, *crossbus.Subscription, *atomic.Int32) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, admin.CreateSubscription(ctx, "events", "billing"))
	p, err := kafka.New(ctx, o)
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	var handled atomic.Int32
	s, err := bus.Subscribe(ctx, "events", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		handled.Add(1)
		return nil
	}), crossbus.WithDrainTimeout(time.Second))
	require.NoError(t, err)
	return bus, s, &handled
}

// waitStopped waits for s to stop on its own and returns why.
func waitStopped(t *testing.T, s *crossbus.Subscription, within time.Duration) error {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(within):
		t.Fatalf("the subscription still runs after %v", within)
	}
	err := s.Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "billing")
	return err
}

// handleOne publishes an event and waits until the subscription handled it.
func handleOne(t *testing.T, bus *crossbus.Bus, handled *atomic.Int32) {
	t.Helper()
	e := crossbus.NewEvent("com.example.order", "/t")
	require.NoError(t, bus.Publish(context.Background(), "events", &e))
	require.Eventually(t, func() bool { return handled.Load() >= 1 }, 15*time.Second, 10*time.Millisecond)
}

// TestRevokedACLSurfacesAsUnauthorized removes the subscriber's READ
// permission on its topic, then on its group, under a running subscription:
// the cluster answers TOPIC_AUTHORIZATION_FAILED or
// GROUP_AUTHORIZATION_FAILED, and the subscription stops with
// crossbus.ErrUnauthorized.
func TestRevokedACLSurfacesAsUnauthorized(t *testing.T) {
	for _, tc := range []struct {
		name     string
		revoke   *kadm.ACLBuilder
		wantText string
	}{
		{"topic", kadm.NewACLs().Topics("events").Allow("User:app").AllowHosts("*").Operations(kadm.OpRead).
			ResourcePatternType(kadm.ACLPatternLiteral), "TOPIC_AUTHORIZATION_FAILED"},
		{"group", kadm.NewACLs().Groups("events/billing").Allow("User:app").AllowHosts("*").Operations(kadm.OpRead).
			ResourcePatternType(kadm.ACLPatternLiteral), "GROUP_AUTHORIZATION_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lit := kmsg.ACLResourcePatternTypeLiteral
			c := startCluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
				kfake.User("PLAIN", "app", "app",
					kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "events", Pattern: lit, Operation: kmsg.ACLOperationDescribe, Allow: true},
					kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "events", Pattern: lit, Operation: kmsg.ACLOperationRead, Allow: true},
					kfake.ACL{Resource: kmsg.ACLResourceTypeGroup, Name: "events/billing", Pattern: lit, Operation: kmsg.ACLOperationDescribe, Allow: true},
					kfake.ACL{Resource: kmsg.ACLResourceTypeGroup, Name: "events/billing", Pattern: lit, Operation: kmsg.ACLOperationRead, Allow: true},
				))
			ctx := context.Background()
			ao := testOptions(c)
			ao.ClientOpts = append(ao.ClientOpts, login("admin"))
			admin, err := kafka.New(ctx, ao)
			require.NoError(t, err)
			t.Cleanup(func() { _ = admin.Close(context.Background()) })
			o := testOptions(c)
			o.ClientOpts = append(o.ClientOpts, login("app"))
			_, s, _ := subscribeWith(t, admin, o)
			time.Sleep(500 * time.Millisecond) // the member joined and fetches

			var adm *kadm.Client
			require.True(t, admin.As(&adm))
			res, err := adm.DeleteACLs(ctx, tc.revoke)
			require.NoError(t, err)
			require.Len(t, res, 1)
			require.NoError(t, res[0].Err)
			require.Len(t, res[0].Deleted, 1)

			err = waitStopped(t, s, 20*time.Second)
			assert.ErrorIs(t, err, crossbus.ErrUnauthorized)
			assert.ErrorContains(t, err, tc.wantText)
		})
	}
}

// TestDeletedTopicSurfacesAsTopicNotFound deletes a subscription's topic,
// and, in a second run, deletes it and creates it again at once: the
// consumer cannot follow a new topic of the same name (it has a new topic
// ID), so both stop the subscription with crossbus.ErrTopicNotFound.
func TestDeletedTopicSurfacesAsTopicNotFound(t *testing.T) {
	for _, recreate := range []bool{false, true} {
		name := "deleted"
		if recreate {
			name = "deleted-and-created-again"
		}
		t.Run(name, func(t *testing.T) {
			c := startCluster(t)
			ctx := context.Background()
			admin, err := kafka.New(ctx, testOptions(c))
			require.NoError(t, err)
			t.Cleanup(func() { _ = admin.Close(context.Background()) })
			bus, s, handled := subscribeWith(t, admin, testOptions(c))
			handleOne(t, bus, handled)

			var adm *kadm.Client
			require.True(t, admin.As(&adm))
			resp, err := adm.DeleteTopic(ctx, "events")
			require.NoError(t, err)
			require.NoError(t, resp.Err)
			if recreate {
				cr, err := adm.CreateTopic(ctx, 3, -1, nil, "events")
				require.NoError(t, err)
				require.NoError(t, cr.Err)
			}
			err = waitStopped(t, s, 20*time.Second)
			assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
		})
	}
}
