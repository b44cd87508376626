package chaos_test

import (
	"context"
	"testing"
	"time"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/chaos"
	"github.com/crossbus/crossbus/providers/memory"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the suite on the chaos provider over one shared strict memory
// broker; every NewProvider is a new chaos client with the harness's rates.
type harness struct {
	mem  *memory.Provider
	opts chaos.Options
}

func (h *harness) NewProvider(context.Context) (driver.Provider, error) {
	return chaos.New(client{h.mem}, h.opts), nil
}
func (h *harness) CreateTopic(ctx context.Context, topic string) error {
	return h.mem.CreateTopic(ctx, topic)
}
func (h *harness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	return h.mem.CreateSubscription(ctx, topic, sub, o.Ordered)
}
func (h *harness) DeleteSubscription(ctx context.Context, topic, sub string) error {
	return h.mem.DeleteSubscription(ctx, topic, sub)
}
func (h *harness) AsTarget() any { return new(*memory.Provider) }
func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 500 * time.Millisecond, Timeout: 15 * time.Second}
}

// client shares the broker but has its own Close, like a network client.
type client struct{ *memory.Provider }

func (client) Close(context.Context) error { return nil }

func newHarness(o chaos.Options) func(t *testing.T) providertest.Harness {
	return func(t *testing.T) providertest.Harness {
		// A short lease, so lost acknowledgements and dropped connections
		// bring their events back within the suite's waits.
		return &harness{mem: memory.New(memory.Options{AckDeadline: time.Second}), opts: o}
	}
}

// With every rate zero the chaos provider is transparent: the whole suite
// passes, as on the memory provider it wraps.
func TestConformanceWithoutFaults(t *testing.T) {
	providertest.Run(t, newHarness(chaos.Options{}))
}

// Faults that lose, repeat or hold back deliveries: no event is lost and an
// idempotent consumer runs each event once.
var deliveryFaults = chaos.Options{Seed: 1, LostAck: 0.05, Duplicate: 0.05, Reorder: 0.3, Delay: 0.05, MaxDelay: 50 * time.Millisecond,
	ReceiveError: 0.02, SlowSettle: 0.05, SettleDelay: 5 * time.Millisecond, Disconnect: 0.005}

func TestConformanceUnderDeliveryFaults(t *testing.T) {
	providertest.RunGuarantees(t, newHarness(deliveryFaults), chaos.GuaranteesUnderDeliveryFaults...)
}

// Faults that keep every delivery once and each key's order: the retry,
// dead-letter and ordering guarantees hold exactly.
var orderKeepingFaults = chaos.Options{Seed: 2, Reorder: 0.5, Delay: 0.1, MaxDelay: 50 * time.Millisecond,
	ReceiveError: 0.05, SlowSettle: 0.1, SettleDelay: 5 * time.Millisecond}

func TestConformanceUnderOrderKeepingFaults(t *testing.T) {
	providertest.RunGuarantees(t, newHarness(orderKeepingFaults), chaos.GuaranteesUnderOrderKeepingFaults...)
}
