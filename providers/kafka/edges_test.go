package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/kafka"
)

// TestOneSubscriptionNameOnTwoTopics subscribes "audit" to two topics at
// once, as every other provider allows: each subscription is a consumer
// group of its own (scoped by topic), so the second one joining does not
// disturb the first, and both receive every event of their topic.
func TestOneSubscriptionNameOnTwoTopics(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	o := testOptions(c)
	o.AutoCreate = true
	p, err := kafka.New(ctx, o)
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })

	topics := []string{"orders", "payments"}
	var mu sync.Mutex
	got := map[string]map[string]bool{} // topic -> event ids
	for _, topic := range topics {
		got[topic] = map[string]bool{}
		_, err := bus.Subscribe(ctx, topic, "audit", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			mu.Lock()
			got[topic][e.ID()] = true
			mu.Unlock()
			return nil
		}))
		require.NoError(t, err)
	}
	assert.Equal(t, "orders/audit", p.GroupID("orders", "audit"))

	const n = 30
	want := map[string][]string{}
	for round := 0; round < 3; round++ {
		for _, topic := range topics {
			var batch []*crossbus.Event
			for i := 0; i < n/3; i++ {
				e := crossbus.NewEvent("com.example.audit", "/edges-test")
				crossbus.SetPartitionKey(&e, fmt.Sprintf("k-%d", i))
				batch = append(batch, &e)
				want[topic] = append(want[topic], e.ID())
			}
			require.NoError(t, bus.Publish(ctx, topic, batch...))
		}
		time.Sleep(200 * time.Millisecond) // spread over the groups' joins
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["orders"]) == n && len(got["payments"]) == n
	}, 30*time.Second, 20*time.Millisecond, "both subscriptions receive every event of their topic")
	mu.Lock()
	defer mu.Unlock()
	for _, topic := range topics {
		for _, id := range want[topic] {
			assert.True(t, got[topic][id], "%s: event %s", topic, id)
		}
	}
}

// TestGroupsOptionNamesAnExistingGroup maps a subscription to a consumer
// group that already exists (one a service used before subscriptions were
// scoped by topic): its committed offsets are kept, so the events published
// while nobody consumed are delivered.
func TestGroupsOptionNamesAnExistingGroup(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	o := testOptions(c)
	o.AutoCreate = true
	admin, err := kafka.New(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	// The old group, made by hand, starts at the end of "events".
	o.Groups = map[string]string{"billing": "billing"}
	mapped, err := kafka.New(ctx, o)
	require.NoError(t, err)
	assert.Equal(t, "billing", mapped.GroupID("events", "billing"))
	require.NoError(t, mapped.CreateSubscription(ctx, "events", "billing"))
	require.NoError(t, mapped.Close(ctx))

	// Published while the service was down.
	e := crossbus.NewEvent("com.example.order.placed", "/edges-test")
	pb, err := crossbus.New(admin)
	require.NoError(t, err)
	require.NoError(t, pb.Publish(ctx, "events", &e))

	u := "kafka://" + c.ListenAddrs()[0] + "?group=events/billing=billing&commitinterval=100ms"
	bus, err := crossbus.Open(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	got := make(chan string, 1)
	_, err = bus.Subscribe(ctx, "events", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		select {
		case got <- e.ID():
		default:
		}
		return nil
	}))
	require.NoError(t, err)
	select {
	case id := <-got:
		assert.Equal(t, e.ID(), id)
	case <-time.After(30 * time.Second):
		t.Fatal("the mapped group's offsets were not used")
	}
}

// TestAdminRightAfterTopicCreationIsQuick creates a topic and its
// subscription in one go: the end offsets of the new topic are read
// without waiting out the client's metadata age.
func TestAdminRightAfterTopicCreationIsQuick(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ctx := context.Background()
	p, err := kafka.New(ctx, kafka.Options{Brokers: c.ListenAddrs()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	for i := range 3 {
		start := time.Now()
		require.NoError(t, p.CreateSubscription(ctx, fmt.Sprintf("fresh-%d", i), "billing"))
		assert.Less(t, time.Since(start), 2*time.Second, "create topic %d and its subscription", i)
	}
}

// TestPublishHonoursItsContextDuringAnOutage stops the only broker and
// publishes with a short context: Publish returns when the context ends,
// with an error that says so and names the topic.
func TestPublishHonoursItsContextDuringAnOutage(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
	require.NoError(t, err)
	ctx := context.Background()
	p, err := kafka.New(ctx, kafka.Options{Brokers: c.ListenAddrs()})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = p.Close(cctx) // the record sent during the outage is given up
	})
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	e := crossbus.NewEvent("com.example.order.placed", "/edges-test")
	require.NoError(t, bus.Publish(ctx, "events", &e))

	addr := c.ListenAddrs()[0] // a closed cluster no longer answers ListenAddrs
	c.Close()                  // the outage
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	e2 := crossbus.NewEvent("com.example.order.placed", "/edges-test")
	err = bus.Publish(pctx, "events", &e2)
	took := time.Since(start)
	require.Error(t, err)
	assert.Less(t, took, 2*time.Second, "Publish returned %v after its context ended", took-time.Second)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "error: %v", err)
	assert.Contains(t, err.Error(), `"events"`)
	assert.Contains(t, err.Error(), addr, "the error names the broker")
}
