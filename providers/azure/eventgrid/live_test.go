package eventgrid_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
)

// Environment variables that turn on the tests against Azure.
const (
	envNamespaceEndpoint = "CROSSBUS_EVENTGRID_NAMESPACE_ENDPOINT"     // https://<ns>.<region>-1.eventgrid.azure.net
	envNamespaceKey      = "CROSSBUS_EVENTGRID_NAMESPACE_KEY"          // optional: else an Entra ID login (DefaultAzureCredential)
	envNamespaceTopic    = "CROSSBUS_EVENTGRID_NAMESPACE_TOPIC"        // a namespace topic
	envNamespaceSub      = "CROSSBUS_EVENTGRID_NAMESPACE_SUBSCRIPTION" // a queue event subscription on it, for tests only
	envTopicEndpoint     = "CROSSBUS_EVENTGRID_TOPIC_ENDPOINT"         // https://<topic>.<region>-1.eventgrid.azure.net/api/events
	envTopicKey          = "CROSSBUS_EVENTGRID_TOPIC_KEY"              // its access key
)

func liveEnv(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var missing []string
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			out[n] = v
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Skipf("live Azure Event Grid test skipped: set %v to run it", missing)
	}
	return out
}

func TestLiveNamespacePublishReceiveReleaseAcknowledge(t *testing.T) {
	env := liveEnv(t, envNamespaceEndpoint, envNamespaceTopic, envNamespaceSub)
	o := eventgrid.NamespaceOptions{Endpoint: env[envNamespaceEndpoint], Key: os.Getenv(envNamespaceKey), MaxWaitTime: 10 * time.Second}
	if o.Key == "" {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		require.NoError(t, err, "no %s and no Entra ID credential", envNamespaceKey)
		o.Credential = cred
	}
	ns := newNamespace(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, sub := env[envNamespaceTopic], env[envNamespaceSub]

	ev := crossbus.NewEvent("com.crossbus.live.tested", "/crossbus/live")
	require.NoError(t, crossbus.SetData(&ev, map[string]string{"run": ev.ID()}))
	ev.SetExtension("tenant", "crossbus")
	require.NoError(t, newBus(t, ns).Publish(ctx, topic, &ev))

	r, err := ns.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(ctx)
	find := func() driver.Delivery {
		buf := make([]driver.Delivery, 10)
		for {
			n, err := r.Receive(ctx, buf)
			require.NoError(t, err)
			var mine driver.Delivery
			for _, d := range buf[:n] {
				if d.Event().ID() == ev.ID() {
					mine = d
				} else {
					_ = d.Nack(ctx, 0) // another run's event: leave it
				}
			}
			if mine != nil {
				return mine
			}
		}
	}
	d := find()
	assert.Equal(t, 1, d.Attempt())
	assert.Equal(t, "crossbus", crossbus.ExtensionString(d.Event(), "tenant"))
	assert.JSONEq(t, `{"run":"`+ev.ID()+`"}`, string(d.Event().Data()))
	require.NoError(t, d.(driver.LeaseExtender).ExtendLease(ctx, time.Minute))
	require.NoError(t, d.Nack(ctx, 0))
	d = find()
	assert.Equal(t, 2, d.Attempt(), "the delivery count rose")
	require.NoError(t, d.Ack(ctx))
}

func TestLiveBasicTopicPublish(t *testing.T) {
	env := liveEnv(t, envTopicEndpoint, envTopicKey)
	tp, err := eventgrid.NewTopics(eventgrid.TopicsOptions{Endpoints: map[string]string{"live": env[envTopicEndpoint]}, Key: env[envTopicKey]})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, newBus(t, tp).Publish(ctx, "live", jsonEvents(t, 3)...))
}
