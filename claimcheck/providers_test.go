package claimcheck_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/azureblob"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
)

// roundTrip publishes a 5 MB event on bus and checks that the handler gets
// it whole, with its attributes.
func roundTrip(t *testing.T, bus *crossbus.Bus, store *claimcheck.Store, topic, sub string, opts ...crossbus.RouteOption) {
	t.Helper()
	c := newCollector()
	subscribe(t, bus, topic, sub, c.handler(nil), opts...)
	limit := bus.Capabilities().MaxEventBytes
	data := payload(5<<20, 42)
	require.Greater(t, len(data), limit, "5 MB is over the provider's limit")
	e := bigEvent(t, "invoice-5mb", data)
	e.SetSubject("invoices/2026/0042.pdf")
	crossbus.SetPartitionKey(e, "customer-42")
	start := time.Now()
	require.NoError(t, bus.Publish(context.Background(), topic, e))
	got := c.next(t)
	t.Logf("5 MB event through %s (limit %d bytes) and %s in %v", bus.Provider().(interface{ MessagingSystem() string }).MessagingSystem(),
		limit, store.URI(), time.Since(start).Round(time.Millisecond))
	sameBytes(t, data, got.Data())
	assert.Equal(t, e.ID(), got.ID())
	assert.Equal(t, e.Source(), got.Source())
	assert.Equal(t, "invoices/2026/0042.pdf", got.Subject())
	assert.Equal(t, "application/pdf", got.DataContentType())
	assert.Equal(t, "customer-42", crossbus.PartitionKey(got))
	assert.Equal(t, store.Ref(store.Key(data)), claimcheck.Ref(got))
}

func TestFiveMegabytesThroughSQS(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	cfg := srv.Config()
	p, err := aws.New(ctx, aws.Options{Config: &cfg, WaitTime: time.Second})
	require.NoError(t, err)
	_, err = p.Provision(ctx, aws.Route{Subscription: "invoices", Topic: "invoices", MaxReceiveCount: 5})
	require.NoError(t, err)
	store := newS3Fake(t).store(t, bucketName("claims"), true)
	bus, err := crossbus.New(p, claimcheck.Option(store, 256<<10))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(ctx) })
	roundTrip(t, bus, store, "invoices", "invoices")
}

func TestFiveMegabytesThroughEventGrid(t *testing.T) {
	srv := egtest.NewServer(egtest.Options{})
	t.Cleanup(srv.Close)
	require.NoError(t, srv.CreateTopic("invoices"))
	require.NoError(t, srv.CreateSubscription("invoices", "billing", egtest.SubscriptionConfig{}))
	ns, err := eventgrid.NewNamespace(eventgrid.NamespaceOptions{Endpoint: srv.Endpoint(), Key: srv.Key(), ClientOptions: srv.ClientOptions()})
	require.NoError(t, err)
	store := eventGridStore(t)
	bus, err := crossbus.New(ns, claimcheck.Option(store, 256<<10))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	roundTrip(t, bus, store, "invoices", "billing", crossbus.WithDeadLetterTopic("invoices-dead"))
}

// eventGridStore is a container on Azurite when it runs, else a directory.
func eventGridStore(t *testing.T) *claimcheck.Store {
	blobURL := os.Getenv("CROSSBUS_AZURITE_BLOB_URL")
	if blobURL == "" {
		t.Log("CROSSBUS_AZURITE_BLOB_URL not set: the claim check uses a directory bucket (scripts/deps/azurite.sh runs Azurite)")
		s, err := claimcheck.Open(context.Background(), "file://"+t.TempDir(), nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	cred, err := container.NewSharedKeyCredential(os.Getenv("CROSSBUS_AZURITE_ACCOUNT"), os.Getenv("CROSSBUS_AZURITE_KEY"))
	require.NoError(t, err)
	name := bucketName("eventgrid")
	c, err := container.NewClientWithSharedKeyCredential(strings.TrimRight(blobURL, "/")+"/"+name, cred, nil)
	require.NoError(t, err)
	_, err = c.Create(context.Background(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = c.Delete(context.Background(), nil) })
	b, err := azureblob.OpenBucket(context.Background(), c, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	s, err := claimcheck.New(b, "azblob://"+name, nil)
	require.NoError(t, err)
	return s
}
