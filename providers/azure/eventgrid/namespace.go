package eventgrid

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

func init() {
	crossbus.Register("azeventgridns", providerkit.Opener(namespaceOptionsFromURL, func(_ context.Context, o NamespaceOptions) (*Namespace, error) {
		return NewNamespace(o)
	}))
	crossbus.Register("azeventgrid", providerkit.Opener(topicsOptionsFromURL, func(_ context.Context, o TopicsOptions) (*Topics, error) {
		return NewTopics(o)
	}))
}

// Namespace is the crossbus provider for Event Grid namespaces: it publishes
// to namespace topics and pulls from their queue event subscriptions. Topics
// and event subscriptions are created with the control plane (portal, CLI,
// Bicep); crossbus names them in Publish and Subscribe.
//
// Natively: lock-based delivery with the delivery count as the attempt,
// acknowledge, release with a delay (Event Grid allows 0s, 10s, 1m, 10m and
// 1h; a requested delay is rounded up to the next of these), lock renewal,
// and, when NativeDeadLetter is set, reject to the subscription's dead-letter
// destination. Not native: ordering (the portable layer orders per key in one
// consumer) and reading dead letters (they are blobs in a storage account).
type Namespace struct {
	opts NamespaceOptions
	pub  publisher

	receivers providerkit.Receivers[*receiver]

	// life ends the receive polls that outlive their receivers (see
	// providerkit.Polls); polls counts them.
	life    context.Context
	endLife context.CancelFunc
	polls   sync.WaitGroup

	mu      sync.Mutex
	senders map[string]*aznamespaces.SenderClient
}

// NewNamespace returns a provider for the namespace at opts.Endpoint.
func NewNamespace(opts NamespaceOptions) (*Namespace, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	n := &Namespace{opts: opts, pub: publisher{maxCount: MaxNamespaceBatch, what: "namespace topic"},
		senders: map[string]*aznamespaces.SenderClient{}}
	n.life, n.endLife = context.WithCancel(context.Background())
	return n, nil
}

// Capabilities reports what Event Grid namespaces do natively.
func (n *Namespace) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		NativeDeadLetter:   n.opts.NativeDeadLetter,
		DelayedRedelivery:  true,
		MaxRedeliveryDelay: time.Hour,
		LeaseExtension:     true,
		MaxEventBytes:      MaxEventBytes,
		MaxBatchCount:      MaxNamespaceBatch,
		MaxBatchBytes:      MaxRequestBytes,
		DefaultAckDeadline: n.opts.LockDuration,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (n *Namespace) MessagingSystem() string { return "eventgrid" }

// As is the escape hatch: target may be a **Namespace (then use
// SenderClient and ReceiverClient for the Azure SDK clients) or a
// *NamespaceOptions (a copy of the options).
func (n *Namespace) As(target any) bool {
	switch t := target.(type) {
	case *NamespaceOptions:
		*t = n.opts
		return true
	case **Namespace:
		*t = n
		return true
	}
	return false
}

// SenderClient returns the Azure SDK client that publishes to topic, for
// what crossbus does not cover.
func (n *Namespace) SenderClient(topic string) (*aznamespaces.SenderClient, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.receivers.Closed() {
		return nil, fmt.Errorf("eventgrid: namespace provider: %w", driver.ErrClosed)
	}
	if c := n.senders[topic]; c != nil {
		return c, nil
	}
	co := &aznamespaces.SenderClientOptions{ClientOptions: n.opts.ClientOptions}
	var c *aznamespaces.SenderClient
	var err error
	if n.opts.Key != "" {
		c, err = aznamespaces.NewSenderClientWithSharedKeyCredential(n.opts.Endpoint, topic, azcore.NewKeyCredential(n.opts.Key), co)
	} else {
		c, err = aznamespaces.NewSenderClient(n.opts.Endpoint, topic, n.opts.Credential, co)
	}
	if err != nil {
		return nil, fmt.Errorf("eventgrid: sender for topic %q: %w", topic, err)
	}
	n.senders[topic] = c
	return c, nil
}

// ReceiverClient returns a new Azure SDK client for an event subscription.
func (n *Namespace) ReceiverClient(topic, subscription string) (*aznamespaces.ReceiverClient, error) {
	co := &aznamespaces.ReceiverClientOptions{ClientOptions: n.opts.ClientOptions}
	if n.opts.Key != "" {
		return aznamespaces.NewReceiverClientWithSharedKeyCredential(n.opts.Endpoint, topic, subscription, azcore.NewKeyCredential(n.opts.Key), co)
	}
	return aznamespaces.NewReceiverClient(n.opts.Endpoint, topic, subscription, n.opts.Credential, co)
}

// Publish sends events to a namespace topic in batches of at most 1,000
// events and 1 MiB of JSON; see publisher for how failures are isolated.
func (n *Namespace) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	c, err := n.SenderClient(topic)
	if err != nil {
		return err
	}
	return n.pub.publish(ctx, topic, events, func(ctx context.Context, batch []messaging.CloudEvent) error {
		if len(batch) == 1 {
			_, err := c.SendEvent(ctx, &batch[0], nil)
			return err
		}
		ptrs := make([]*messaging.CloudEvent, len(batch))
		for i := range batch {
			ptrs[i] = &batch[i]
		}
		_, err := c.SendEvents(ctx, ptrs, nil)
		return err
	})
}

// Subscribe opens a pull receiver on the queue event subscription
// spec.Name of namespace topic spec.Topic. It checks that the subscription
// exists with a lock renewal of no events, which changes nothing.
func (n *Namespace) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if spec.Topic == "" || spec.Name == "" {
		return nil, fmt.Errorf("%w: eventgrid: subscribe needs a topic and an event subscription name", driver.ErrInvalidOption)
	}
	if spec.AckDeadline > n.opts.LockDuration {
		return nil, fmt.Errorf("%w: eventgrid: ack deadline %v of subscription %q is longer than the event subscription's lock duration %v (NamespaceOptions.LockDuration); the lock would expire between renewals",
			driver.ErrInvalidOption, spec.AckDeadline, spec.Name, n.opts.LockDuration)
	}
	if spec.MaxAttempts > MaxDeliveryCount {
		return nil, fmt.Errorf("%w: eventgrid: retry policy of subscription %q allows %d attempts, but Event Grid delivers an event at most %d times (maxDeliveryCount) before it dead-letters or drops it; use MaxAttempts <= %d",
			driver.ErrInvalidOption, spec.Name, spec.MaxAttempts, MaxDeliveryCount, MaxDeliveryCount)
	}
	c, err := n.ReceiverClient(spec.Topic, spec.Name)
	if err != nil {
		return nil, fmt.Errorf("eventgrid: receiver for %s/%s: %w", spec.Topic, spec.Name, err)
	}
	if _, err := c.RenewEventLocks(ctx, []string{probeLockToken}, nil); err != nil && statusOf(err) != http.StatusBadRequest {
		return nil, mapError(fmt.Sprintf("open event subscription %q of topic %q", spec.Name, spec.Topic), err, driver.ErrSubscriptionNotFound)
	}
	r := newReceiver(n, c, spec)
	if !n.receivers.Add(r) {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("eventgrid: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	return r, nil
}

// MaxDeliveryCount is the highest maxDeliveryCount an Event Grid queue
// subscription takes; set it at least as high as the routes' MaxAttempts.
const MaxDeliveryCount = 10

// probeLockToken is a lock token that matches no event.
const probeLockToken = "crossbus-subscription-probe"

// Close stops every receiver opened from the provider and ends the receive
// polls still running.
func (n *Namespace) Close(ctx context.Context) error {
	first, err := n.receivers.Close(ctx)
	if first {
		n.endLife()
		providerkit.Wait(ctx, &n.polls)
	}
	return err
}
