package servicebus_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
	"github.com/crossbus/crossbus/providers/providertest"
)

// lockDuration is the lock of every test entity: short, so that redelivery
// after a lost consumer is quick.
const lockDuration = 5 * time.Second

// harness runs the conformance suite against one sbtest broker, through the
// real SDK over AMQP.
type harness struct {
	srv *sbtest.Server
}

func (h *harness) NewProvider(ctx context.Context) (crossbus.Provider, error) {
	return servicebus.New(ctx, servicebus.Options{ConnectionString: h.srv.ConnectionString(), LockDuration: lockDuration})
}

func (h *harness) CreateTopic(_ context.Context, topic string) error {
	return h.srv.CreateTopic(topic, sbtest.EntityOptions{})
}

func (h *harness) CreateSubscription(_ context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	return h.srv.CreateSubscription(topic, sub, sbtest.EntityOptions{
		LockDuration:     lockDuration,
		MaxDeliveryCount: max(o.MaxAttempts, 10) + 5, // the portable policy decides, not the broker
		RequiresSession:  o.Ordered,
	})
}

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 2 * time.Second, Timeout: 20 * time.Second}
}

func newServer(t testing.TB) *sbtest.Server {
	t.Helper()
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestConformance(t *testing.T) {
	srv := newServer(t)
	providertest.Run(t, func(t *testing.T) providertest.Harness { return &harness{srv: srv} })
}
