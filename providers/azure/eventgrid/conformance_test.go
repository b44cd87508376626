package eventgrid_test

import (
	"context"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
	"github.com/crossbus/crossbus/providers/providertest"
)

// harness runs the conformance suite on namespace topics of one test
// server: each NewProvider is a separate client (its own SDK clients) of
// the same server, as separate processes would be.
type harness struct {
	srv *egtest.Server
}

// harnessLock is the subscriptions' lock duration; the suite's ack deadline
// stays below it, as Subscribe requires.
const harnessLock = 2 * time.Second

func (h *harness) NewProvider(context.Context) (crossbus.Provider, error) {
	o := namespaceOptions(h.srv)
	o.LockDuration = harnessLock
	ns, err := eventgrid.NewNamespace(o)
	return ns, err
}

func (h *harness) CreateTopic(_ context.Context, topic string) error { return h.srv.CreateTopic(topic) }

func (h *harness) CreateSubscription(_ context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	return h.srv.CreateSubscription(topic, sub, egtest.SubscriptionConfig{LockDuration: harnessLock, MaxDeliveryCount: eventgrid.MaxDeliveryCount})
}

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: time.Second, Timeout: 20 * time.Second}
}

func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		return &harness{srv: newServer(t)}
	})
}
