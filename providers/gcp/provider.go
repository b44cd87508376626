package gcp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// Scheme is the URL scheme the provider registers: "gcppubsub://projects/P".
const Scheme = "gcppubsub"

func init() {
	crossbus.Register(Scheme, providerkit.Opener(OptionsFromURL, New))
}

func insecureDial() grpc.DialOption { return grpc.WithTransportCredentials(insecure.NewCredentials()) }

// Provider is the Google Cloud Pub/Sub provider. It is safe for concurrent
// use.
type Provider struct {
	opts      Options
	client    *pubsub.Client
	ownClient bool
	project   string
	log       *slog.Logger

	receivers providerkit.Receivers[*receiver]
	watch     *transportWatch // what the client's RPCs last failed with
	abandon   chan struct{}   // closed when Close gives up on unsent publishes

	mu         sync.Mutex
	publishers map[string]*pubsub.Publisher // by topic resource name
}

var (
	_ driver.Provider         = (*Provider)(nil)
	_ driver.DeadLetterReader = (*Provider)(nil)
)

// New returns a provider. It dials Pub/Sub unless Options.Client is set;
// credentials come from ClientOptions or Application Default Credentials.
func New(ctx context.Context, o Options) (*Provider, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	p := &Provider{opts: o, client: o.Client, publishers: map[string]*pubsub.Publisher{},
		log: cmp.Or(o.Logger, slog.New(slog.DiscardHandler)), watch: &transportWatch{}, abandon: make(chan struct{})}
	if p.client == nil {
		p.watch.endpoint = cmp.Or(o.Endpoint, os.Getenv("PUBSUB_EMULATOR_HOST"), defaultEndpoint)
		c, err := pubsub.NewClient(ctx, o.Project, append(o.clientOptions(), p.watch.dialOptions()...)...)
		if err != nil {
			return nil, fmt.Errorf("gcp: new Pub/Sub client for project %q: %w", o.Project, err)
		}
		p.client, p.ownClient = c, true
		abandonablePublishes(c, p.abandon)
	}
	p.project = cmp.Or(o.Project, p.client.Project())
	return p, nil
}

// Capabilities reports what Pub/Sub does natively. NativeDeadLetter is false
// here because it depends on the subscription: receivers of subscriptions
// with a dead-letter policy report it through ReceiverCapabilities.
func (p *Provider) Capabilities() driver.Capabilities {
	lease := cmp.Or(p.opts.AckDeadline, defaultLease)
	return driver.Capabilities{
		Ordering:           !p.opts.DisableOrderingKeys,
		DelayedRedelivery:  true,
		MaxRedeliveryDelay: maxLease,
		LeaseExtension:     true,
		// EncodedSize does not count the "ce-" prefixes, the ordering key
		// or protobuf framing; Publish checks the exact wire size.
		MaxEventBytes:      pubsubwire.MaxMessageBytes - 4096,
		MaxBatchCount:      pubsub.MaxPublishRequestCount,
		MaxBatchBytes:      pubsub.MaxPublishRequestBytes,
		DefaultAckDeadline: lease,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (p *Provider) MessagingSystem() string { return "gcp_pubsub" }

// As reaches the native client: target may be a **pubsub.Client or a
// **Provider.
func (p *Provider) As(target any) bool {
	switch t := target.(type) {
	case **pubsub.Client:
		*t = p.client
	case **Provider:
		*t = p
	default:
		return false
	}
	return true
}

// Project returns the project that short topic and subscription names
// belong to.
func (p *Provider) Project() string { return p.project }

// Client returns the Pub/Sub client.
func (p *Provider) Client() *pubsub.Client { return p.client }

func (p *Provider) topicName(topic string) string { return pubsubwire.TopicName(p.project, topic) }

func (p *Provider) subscriptionName(sub string) string {
	return pubsubwire.SubscriptionName(p.project, sub)
}

// Close stops every receiver (unsettled deliveries are returned for
// redelivery), sends what the publishers still hold, and closes the client
// if the provider dialled it. It returns by ctx's deadline: publishes still
// unsent then (the client retries an unreachable service until the publish
// timeout) are abandoned, and the error says so: the publishers stop
// retrying, and the client's connections are closed so that attempts in
// flight end; their goroutines end within seconds.
func (p *Provider) Close(ctx context.Context) error {
	first, err := p.receivers.Close(ctx)
	if !first {
		return nil
	}
	errs := []error{err}
	p.mu.Lock() // publisher creates no publisher once the receivers are closed
	pubs := p.publishers
	p.publishers = map[string]*pubsub.Publisher{}
	p.mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		for _, pub := range pubs {
			pub.Stop()
		}
		close(stopped)
	}()
	clientClosed := false
	select {
	case <-stopped:
	case <-ctx.Done():
		// Publishes the client still retries (an unreachable endpoint)
		// would hold Stop until the publish timeout. Closing the client's
		// connections fails them at once, so Stop returns; those events
		// were reported failed to their Publish calls, or will be.
		errs = append(errs, p.watch.explain(fmt.Errorf("gcp: stopping publishers with messages still unsent: %w", ctx.Err())))
		close(p.abandon)
		if p.ownClient {
			clientClosed = true
			if err := p.client.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gcp: close client: %w", err))
			}
		}
		// The publishers now end within maxPublishBackoff (a client the
		// caller made stays open: they end at their next attempt).
	}
	if p.ownClient && !clientClosed {
		if err := p.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gcp: close client: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (p *Provider) isClosed() bool { return p.receivers.Closed() }

// callTimeout bounds the administrative calls and settlement RPCs the
// provider makes on its own behalf.
const callTimeout = 60 * time.Second
