package memory_test

import (
	"errors"

	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the suite on one shared strict (no auto-create) provider;
// every NewProvider returns the same in-process broker, as separate clients
// of one server would see it.
type harness struct{ p *memory.Provider }

func (h *harness) NewProvider(context.Context) (driver.Provider, error) { return client{h.p}, nil }
func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	return h.p.CreateTopic(ctx, topic)
}
func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	return h.p.CreateSubscription(ctx, topic, sub, o.Ordered)
}
func (h *harness) DeleteSubscription(ctx context.Context, topic, sub string) error {
	return h.p.DeleteSubscription(ctx, topic, sub)
}

func (h *harness) AsTarget() any { return new(*memory.Provider) }

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 500 * time.Millisecond, Timeout: 10 * time.Second}
}

// client shares the broker but has its own Close, like a network client.
type client struct{ *memory.Provider }

func (client) Close(context.Context) error { return nil }

func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		return &harness{p: memory.New(memory.Options{})}
	})
}

// The dead-letter sub-queue is bounded: when it is full, dead-lettering fails
// and the event stays in the subscription (nothing is dropped); once the
// dead letters are read, the next attempt dead-letters it.
func TestDeadLetterQueueIsBoundedAndOverflowKeepsTheEvent(t *testing.T) {
	ctx := context.Background()
	p := memory.New(memory.Options{AutoCreate: true, MaxDeadLetters: 2})
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	defer bus.Close(ctx)
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return crossbus.Permanent(errors.New("card declined"))
	}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 1, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}))
	require.NoError(t, err)
	evs := make([]*crossbus.Event, 3)
	for i := range evs {
		e := crossbus.NewEvent("com.example.order", "/shop")
		evs[i] = &e
	}
	require.NoError(t, bus.Publish(ctx, "orders", evs...))
	require.Eventually(t, func() bool {
		st, _ := p.Stats("orders", "billing")
		return st.Dead == 2 && st.Waiting+st.Delayed+st.InFlight == 1
	}, 5*time.Second, 5*time.Millisecond, "two dead letters, the third kept in the subscription")

	// Reading the dead letters makes room: the third is dead-lettered next.
	recv, err := p.SubscribeDeadLetters(ctx, "orders", "billing")
	require.NoError(t, err)
	buf := make([]driver.Delivery, 2)
	n, err := recv.Receive(ctx, buf)
	require.NoError(t, err)
	for _, d := range buf[:n] {
		require.NoError(t, d.Ack(ctx))
	}
	require.Eventually(t, func() bool {
		st, _ := p.Stats("orders", "billing")
		return st.Dead == 3-n && st.Waiting+st.Delayed+st.InFlight == 0
	}, 5*time.Second, 5*time.Millisecond, "the kept event is dead-lettered once there is room")
}
