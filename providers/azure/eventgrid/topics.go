package eventgrid

import (
	"context"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/crossbus/crossbus/driver"
)

// Topics is the crossbus provider for Event Grid basic (custom) topics with
// the CloudEvents 1.0 input schema. It only publishes: Event Grid pushes
// basic topic events to their subscribers, which crossbus receives with
// Webhook (or the Azure Functions adapter). Subscribe returns
// ErrNotSupported.
type Topics struct {
	opts TopicsOptions
	pub  publisher

	mu      sync.Mutex
	clients map[string]*azeventgrid.Client
	closed  bool
}

// NewTopics returns a provider that publishes to the topics in
// opts.Endpoints.
func NewTopics(opts TopicsOptions) (*Topics, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Topics{opts: opts, pub: publisher{maxCount: MaxTopicBatch, what: "topic"}, clients: map[string]*azeventgrid.Client{}}, nil
}

// Capabilities reports Event Grid basic topic limits; delivery features do
// not apply (delivery is push).
func (t *Topics) Capabilities() driver.Capabilities {
	return driver.Capabilities{MaxEventBytes: MaxEventBytes, MaxBatchCount: MaxTopicBatch, MaxBatchBytes: MaxRequestBytes}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (t *Topics) MessagingSystem() string { return "eventgrid" }

// As is the escape hatch: target may be a **Topics (then use Client).
func (t *Topics) As(target any) bool {
	if p, ok := target.(**Topics); ok {
		*p = t
		return true
	}
	return false
}

// Client returns the Azure SDK client of a topic.
func (t *Topics) Client(topic string) (*azeventgrid.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("eventgrid: topics provider: %w", driver.ErrClosed)
	}
	if c := t.clients[topic]; c != nil {
		return c, nil
	}
	ep, ok := t.opts.Endpoints[topic]
	if !ok {
		return nil, fmt.Errorf("eventgrid: topic %q has no endpoint in TopicsOptions.Endpoints: %w", topic, driver.ErrTopicNotFound)
	}
	co := &azeventgrid.ClientOptions{ClientOptions: t.opts.ClientOptions}
	var c *azeventgrid.Client
	var err error
	if t.opts.Key != "" {
		c, err = azeventgrid.NewClientWithSharedKeyCredential(ep, azcore.NewKeyCredential(t.opts.Key), co)
	} else {
		c, err = azeventgrid.NewClient(ep, t.opts.Credential, co)
	}
	if err != nil {
		return nil, fmt.Errorf("eventgrid: client for topic %q: %w", topic, err)
	}
	t.clients[topic] = c
	return c, nil
}

// Publish sends events to a basic topic in batches of at most 5,000 events
// and 1 MiB of JSON, isolating refused events as Namespace.Publish does.
func (t *Topics) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	c, err := t.Client(topic)
	if err != nil {
		return err
	}
	return t.pub.publish(ctx, topic, events, func(ctx context.Context, batch []messaging.CloudEvent) error {
		_, err := c.PublishCloudEvents(ctx, batch, nil)
		return err
	})
}

// Subscribe is not supported: basic topics push. Use Webhook.
func (t *Topics) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	return nil, fmt.Errorf("eventgrid: basic topics push to subscribers; serve subscription %q with eventgrid.Webhook: %w", spec.Name, driver.ErrNotSupported)
}

// Close releases the clients.
func (t *Topics) Close(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return nil
}
