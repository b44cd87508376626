package servicebus_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
	"github.com/crossbus/crossbus/providers/providertest"
)

// lockDuration is the lock of every test entity: short, so that redelivery
// after a lost consumer is quick.
const lockDuration = 5 * time.Second

// harness runs the conformance suite against one sbtest broker, through the
// real SDK over AMQP. DeleteSubscription deletes the subscription on the
// broker (sbtest's DeleteSubscription, which detaches its receivers with
// amqp:not-found as Service Bus does); PublishRaw sends the bytes with the
// SDK as a structured CloudEvent that is not one.
type harness struct {
	srv    *sbtest.Server
	client *azservicebus.Client
	// autoCreate leaves subscriptions to the provider (Options.AutoCreate),
	// which creates them when a route subscribes, with the route's filter.
	autoCreate bool
}

var (
	_ providertest.SubscriptionDeleter = (*harness)(nil)
	_ providertest.RawPublisher        = (*harness)(nil)
)

func newHarness(t *testing.T, srv *sbtest.Server) *harness {
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return &harness{srv: srv, client: client}
}

func (h *harness) NewProvider(ctx context.Context) (driver.Provider, error) {
	o := servicebus.Options{ConnectionString: h.srv.ConnectionString(), LockDuration: lockDuration}
	if h.autoCreate {
		ac, err := admin.NewClientFromConnectionString(h.srv.ConnectionString(),
			&admin.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: h.srv.HTTPClient()}})
		if err != nil {
			return nil, err
		}
		o.AutoCreate, o.Admin = true, ac
	}
	return servicebus.New(ctx, o)
}

func (h *harness) CreateTopic(_ context.Context, topic string) error {
	return h.srv.CreateTopic(topic, sbtest.EntityOptions{})
}

func (h *harness) CreateSubscription(_ context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	if h.autoCreate {
		return nil // the route's Subscribe creates it
	}
	var filter string
	if o.FilterPattern != "" {
		// The route's pattern becomes the subscription's rule.
		f, err := crossbus.CompilePattern(o.FilterPattern)
		if err != nil {
			return err
		}
		if filter, _, err = servicebus.SQLFilter(f); err != nil {
			return err
		}
	}
	return h.srv.CreateSubscription(topic, sub, sbtest.EntityOptions{
		LockDuration:     lockDuration,
		MaxDeliveryCount: max(o.MaxAttempts, 10) + 5, // the portable policy decides, not the broker
		RequiresSession:  o.Ordered,
		Filter:           filter,
	})
}

func (h *harness) DeleteSubscription(_ context.Context, topic, sub string) error {
	return h.srv.DeleteSubscription(topic, sub)
}

// PublishRaw sends payload with the content type of a structured CloudEvent
// (application/cloudevents+json), as a producer that claims to send
// CloudEvents but does not would: a message without any CloudEvents claim
// is not undecodable on Service Bus, it becomes an event by the rule of
// EventFromMessage.
func (h *harness) PublishRaw(ctx context.Context, topic string, payload []byte) error {
	s, err := h.client.NewSender(topic, nil)
	if err != nil {
		return err
	}
	defer s.Close(context.WithoutCancel(ctx))
	ct := "application/cloudevents+json"
	return s.SendMessage(ctx, &azservicebus.Message{Body: payload, ContentType: &ct}, nil)
}

// AsTarget names the native client As must reach.
func (h *harness) AsTarget() any { return new(*azservicebus.Client) }

func (h *harness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 2 * time.Second, Timeout: 20 * time.Second, NativeFilters: true}
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
	providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t, srv) })
}

// TestConformanceAutoCreate runs the guarantees that need no events
// published before the route subscribes with subscriptions the provider
// creates itself (Options.AutoCreate): with the route's filter as their
// rule, and with sessions for ordered routes.
func TestConformanceAutoCreate(t *testing.T) {
	srv := newServer(t)
	providertest.RunGuarantees(t, func(t *testing.T) providertest.Harness {
		h := newHarness(t, srv)
		h.autoCreate = true
		return h
	}, "FilteredSubscriptionNeverReceivesANonMatchingEvent", "AllAttributesExtensionsAndBinaryDataRoundTrip",
		"FanOutToTwoSubscriptions", "OrderedPerKeyWithConcurrentWorkers")
}
