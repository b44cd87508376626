package eventgrid_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
	"github.com/crossbus/crossbus/providers/memory"
)

// Publish to a namespace topic and handle its queue subscription's events.
// The example runs against the egtest server; in production the options
// name the namespace endpoint and a key or Entra ID credential, or the bus
// is opened by URL (see ExampleNamespace_open).
func ExampleNewNamespace() {
	srv := egtest.NewServer(egtest.Options{})
	defer srv.Close()
	_ = srv.CreateTopic("orders")
	_ = srv.CreateSubscription("orders", "billing", egtest.SubscriptionConfig{})

	ctx := context.Background()
	ns, err := eventgrid.NewNamespace(eventgrid.NamespaceOptions{
		Endpoint:      srv.Endpoint(),
		Key:           srv.Key(),
		ClientOptions: srv.ClientOptions(),
	})
	if err != nil {
		panic(err)
	}
	bus, _ := crossbus.New(ns)
	defer bus.Close(ctx)

	done := make(chan struct{})
	sub, err := bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		fmt.Printf("handled %s %s (attempt %d)\n", e.Type(), e.Data(), info.Attempt)
		close(done)
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dead"))
	if err != nil {
		panic(err)
	}
	ev := crossbus.NewEvent("com.example.order.placed", "/shop")
	_ = crossbus.SetData(&ev, map[string]int{"id": 42})
	if err := bus.Publish(ctx, "orders", &ev); err != nil {
		panic(err)
	}
	<-done
	_ = sub.Close(ctx)
	// Output: handled com.example.order.placed {"id":42} (attempt 1)
}

// Open a namespace by URL: the key comes from AZURE_EVENTGRID_KEY (or the
// variable keyenv= names); without one, from the Azure default credential
// chain. deadletter=native says the subscriptions have a dead-letter
// destination.
func ExampleNamespace_open() {
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "azeventgridns://my-ns.westeurope-1.eventgrid.azure.net?lockduration=120s&maxwait=30s")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bus.Close(ctx)
}

// Serve an Event Grid webhook subscription: the handler checks the secret
// in the subscription's endpoint URL, answers the validation handshakes and
// runs each pushed event through the route.
func ExampleNewWebhook() {
	ctx := context.Background()
	bus, _ := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	defer bus.Close(ctx)
	ep, err := bus.NewEndpoint("uploads", "thumbnails", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		fmt.Println("handled", e.Type(), e.Subject())
		return nil
	}), crossbus.WithDeadLetterTopic("uploads-dead"))
	if err != nil {
		panic(err)
	}
	secret := "kX3v9qR2mT7wZ1pL" // in production: a long random secret, e.g. os.Getenv("WEBHOOK_SECRET")
	hook, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: secret}})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/events", hook)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// What Event Grid sends for a blob upload (Event Grid event schema) to
	// the subscription's endpoint URL, https://host/events?secret=....
	body := `[{"id":"1","topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
	  "subject":"/blobServices/default/containers/uploads/blobs/cat.png","eventType":"Microsoft.Storage.BlobCreated",
	  "eventTime":"2026-11-29T10:00:00Z","data":{"api":"PutBlob"},"dataVersion":"1.0","metadataVersion":"1"}]`
	send := func(url string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("aeg-delivery-count", "0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println("without the secret:", send(srv.URL+"/events"))
	fmt.Println("with it:", send(srv.URL+"/events?secret="+secret))
	// Output:
	// without the secret: 401
	// handled Microsoft.Storage.BlobCreated /blobServices/default/containers/uploads/blobs/cat.png
	// with it: 200
}

// Authenticate Event Grid's pushes with Microsoft Entra ID: the event
// subscription delivers with Entra ID authentication to the webhook's
// application, and the Webhook accepts only Event Grid's tokens for it,
// checked against the tenant's published keys before the body is read.
func ExampleNewEntraID() {
	ctx := context.Background()
	bus, _ := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	defer bus.Close(ctx)
	ep, err := bus.NewEndpoint("uploads", "thumbnails", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		return nil
	}), crossbus.WithDeadLetterTopic("uploads-dead"))
	if err != nil {
		panic(err)
	}
	hook, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{
		Auth: eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(
			"72f988bf-86f1-41af-91ab-2d7cd011db47", // the tenant of the webhook's application
			"api://thumbnails-webhook",             // its Application ID URI, as the event subscription names it
		)},
	})
	if err != nil {
		panic(err)
	}
	http.Handle("/events", hook)
}

// Publish to a basic topic, which pushes to its subscribers.
func ExampleNewTopics() {
	srv := egtest.NewServer(egtest.Options{})
	defer srv.Close()
	endpoint, _ := srv.CreateBasicTopic("uploads", egtest.CloudEventsSchema)

	topics, err := eventgrid.NewTopics(eventgrid.TopicsOptions{
		Endpoints:     map[string]string{"uploads": endpoint},
		Key:           srv.Key(),
		ClientOptions: srv.ClientOptions(),
	})
	if err != nil {
		panic(err)
	}
	bus, _ := crossbus.New(topics)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer bus.Close(ctx)
	ev := crossbus.NewEvent("com.example.upload.done", "/uploads")
	if err := bus.Publish(ctx, "uploads", &ev); err != nil {
		panic(err)
	}
	fmt.Println("published", len(srv.Published("uploads")))
	// Output: published 1
}
