package servicebus_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
	"github.com/crossbus/crossbus/providers/providertest"
)

// Live tests run against a real Service Bus namespace:
//
//	AZURE_SERVICEBUS_CONNECTION_STRING   the namespace (Standard tier or above: topics)
//	AZURE_SERVICEBUS_TOPIC, AZURE_SERVICEBUS_SUBSCRIPTION
//	                                     a dedicated test topic and subscription
//	                                     (TestLiveRoundTrip consumes what is in it)
//	AZURE_SERVICEBUS_LIVE_CONFORMANCE=1  also run the conformance suite; it
//	                                     creates and deletes entities, so the
//	                                     connection string needs Manage rights

func liveConnectionString(t *testing.T) string {
	t.Helper()
	cs := os.Getenv(servicebus.EnvConnectionString)
	if cs == "" {
		t.Skip("live Service Bus tests skipped: AZURE_SERVICEBUS_CONNECTION_STRING is not set")
	}
	return cs
}

func TestLiveRoundTrip(t *testing.T) {
	cs := liveConnectionString(t)
	topic, sub := os.Getenv("AZURE_SERVICEBUS_TOPIC"), os.Getenv("AZURE_SERVICEBUS_SUBSCRIPTION")
	if topic == "" || sub == "" {
		t.Skip("live round trip skipped: set AZURE_SERVICEBUS_TOPIC and AZURE_SERVICEBUS_SUBSCRIPTION to a dedicated test subscription")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := servicebus.New(ctx, servicebus.Options{ConnectionString: cs})
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	defer bus.Close(context.Background())

	run := fmt.Sprintf("live-%d", time.Now().UnixNano())
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan struct{})
	_, err = bus.Subscribe(ctx, topic, sub, crossbus.HandlerFunc(func(_ context.Context, ev *crossbus.Event) error {
		if ev.Subject() != run {
			return nil // someone else's message: acknowledged
		}
		mu.Lock()
		defer mu.Unlock()
		seen[ev.ID()] = true
		if len(seen) == 3 {
			close(done)
		}
		return nil
	}))
	require.NoError(t, err)
	var evs []*crossbus.Event
	for i := 0; i < 3; i++ {
		ev := crossbus.NewEvent("com.example.live", "/crossbus/live")
		ev.SetSubject(run)
		require.NoError(t, crossbus.SetData(&ev, map[string]int{"n": i}))
		evs = append(evs, &ev)
	}
	require.NoError(t, bus.Publish(ctx, topic, evs...))
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("received %d of 3 events", len(seen))
	}
}

// liveHarness creates entities through the administration API.
type liveHarness struct {
	cs     string
	admin  *admin.Client
	mu     sync.Mutex
	topics []string
}

func (h *liveHarness) NewProvider(ctx context.Context) (driver.Provider, error) {
	return servicebus.New(ctx, servicebus.Options{ConnectionString: h.cs, LockDuration: 5 * time.Second})
}

func (h *liveHarness) CreateTopic(ctx context.Context, topic string) error {
	if _, err := h.admin.CreateTopic(ctx, topic, nil); err != nil {
		return err
	}
	h.mu.Lock()
	h.topics = append(h.topics, topic)
	h.mu.Unlock()
	return nil
}

func (h *liveHarness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	lock, maxDelivery := "PT5S", int32(max(o.MaxAttempts, 10)+5)
	props := &admin.SubscriptionProperties{LockDuration: &lock, MaxDeliveryCount: &maxDelivery, RequiresSession: &o.Ordered}
	if o.FilterPattern != "" {
		f, err := crossbus.CompilePattern(o.FilterPattern)
		if err != nil {
			return err
		}
		sql, _, err := servicebus.SQLFilter(f)
		if err != nil {
			return err
		}
		props.DefaultRule = &admin.RuleProperties{Name: servicebus.DefaultRuleName, Filter: &admin.SQLFilter{Expression: sql}}
	}
	_, err := h.admin.CreateSubscription(ctx, topic, sub, &admin.CreateSubscriptionOptions{Properties: props})
	return err
}

func (h *liveHarness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 5 * time.Second, Timeout: time.Minute, LoadEvents: 1000,
		NativeFilters: true}
}

func (h *liveHarness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, topic := range h.topics {
		_, _ = h.admin.DeleteTopic(ctx, topic, nil)
	}
}

func TestLiveConformance(t *testing.T) {
	cs := liveConnectionString(t)
	if os.Getenv("AZURE_SERVICEBUS_LIVE_CONFORMANCE") != "1" {
		t.Skip("live conformance skipped: set AZURE_SERVICEBUS_LIVE_CONFORMANCE=1 (creates and deletes topics; needs Manage rights)")
	}
	ac, err := admin.NewClientFromConnectionString(cs, nil)
	require.NoError(t, err)
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		h := &liveHarness{cs: cs, admin: ac}
		t.Cleanup(h.cleanup)
		return h
	})
}
