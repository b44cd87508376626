package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the suite on one shared strict (no auto-create) provider;
// every NewProvider returns the same in-process broker, as separate clients
// of one server would see it.
type harness struct{ p *memory.Provider }

func (h *harness) NewProvider(context.Context) (crossbus.Provider, error) { return client{h.p}, nil }
func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	return h.p.CreateTopic(ctx, topic)
}
func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	return h.p.CreateSubscription(ctx, topic, sub, o.Ordered)
}
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
