package servicebus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

// Scheme is the URL scheme the provider registers: azuresb://NAMESPACE.
const Scheme = "azuresb"

// EnvConnectionString names the environment variable an azuresb:// URL
// reads the connection string from.
const EnvConnectionString = "AZURE_SERVICEBUS_CONNECTION_STRING"

// Defaults of Options.
const (
	DefaultLockDuration          = 60 * time.Second
	DefaultMaxMessageBytes       = 256 * 1024
	DefaultMaxRedeliveryDelay    = 10 * time.Minute
	DefaultMaxConcurrentSessions = 8
	DefaultSessionIdleTimeout    = time.Second
	// headroom is what the AMQP encoding may add to an event's EncodedSize
	// (property names with their prefix, type codes, the batch envelope).
	headroom = 8 * 1024
)

func init() {
	crossbus.Register(Scheme, providerkit.Opener(optionsFromURL, New))
}

// Options configure a Provider. One of Client, ConnectionString, or
// Namespace with Credential is required; every other field has a default.
type Options struct {
	// ConnectionString is a Service Bus connection string. With
	// ";UseDevelopmentEmulator=true" the SDK speaks plain AMQP to a local
	// emulator (such as sbtest).
	ConnectionString string
	// Namespace is the fully qualified namespace ("NAME.servicebus.windows.net")
	// used with Credential (for example azidentity.NewDefaultAzureCredential).
	Namespace  string
	Credential azcore.TokenCredential
	// Client is an existing SDK client to use instead; the provider does not
	// close it.
	Client *azservicebus.Client
	// ClientOptions are passed to the SDK client the provider creates.
	ClientOptions *azservicebus.ClientOptions

	// Queues names the entities that are queues. Subscribe on a queue
	// ignores the subscription name: consumers of a queue compete. Every
	// other entity is a topic, whose subscription is the one named.
	Queues []string
	// LockDuration is your entities' lock duration, the default ack
	// deadline (default 60s, Service Bus's default). Set it when your
	// queues and subscriptions use a shorter lock.
	LockDuration time.Duration
	// MaxMessageBytes is the tier's message size limit (default 256 KiB,
	// Standard; Premium allows up to 100 MiB). Events are refused at
	// Publish when their EncodedSize is over it minus 8 KiB for the AMQP
	// encoding; the SDK's batch is the final judge of the exact size.
	MaxMessageBytes int
	// MaxRedeliveryDelay bounds the delay Nack honours by holding the
	// message lock (default 10m); longer retries happen in place.
	MaxRedeliveryDelay time.Duration
	// MaxConcurrentSessions is how many sessions an ordered (session)
	// subscription works on at once (default 8).
	MaxConcurrentSessions int
	// SessionIdleTimeout is how long a session receiver waits for another
	// message before it releases the session and accepts the next
	// (default 1s).
	SessionIdleTimeout time.Duration
	// AutoCreate creates, when a route subscribes, the topic and
	// subscription (or the queue) it names if they are missing, through the
	// administration API (for development and tests; it needs Manage
	// rights; URL: autocreate=true). A subscription it creates takes
	// LockDuration, sessions when the route is ordered, and the route's
	// event pattern as its default rule's SQL filter (see SQLFilter), so
	// Service Bus never delivers the events the route would skip. With
	// AutoCreate, receivers also read their subscription's rules: when the
	// only rule is the exact translation of the route's pattern, the route
	// does not match deliveries again (driver.NativeFiltering). Publishing
	// to a missing topic still fails with driver.ErrTopicNotFound.
	AutoCreate bool
	// Admin is the administration client AutoCreate uses (default: one
	// made from ConnectionString, or from Namespace and Credential; required
	// with Client).
	Admin *admin.Client

	// PropertyPrefix is the application property prefix written before
	// attribute names (URL: propertyprefix=cloudEvents_ or cloudEvents:):
	// PropertyPrefix ("cloudEvents_", the default: the AMQP binding's
	// preferred prefix, which Service Bus, Event Grid and Azure Functions
	// use) or PropertyPrefixColon ("cloudEvents:", the only prefix the
	// CloudEvents Go SDK's AMQP binding reads). Both are always read,
	// whatever is written.
	PropertyPrefix string
}

func (o *Options) setDefaults() error {
	switch {
	case o.LockDuration < 0:
		return fmt.Errorf("%w: servicebus LockDuration must not be negative, got %v", driver.ErrInvalidOption, o.LockDuration)
	case o.MaxMessageBytes < 0 || o.MaxMessageBytes > 0 && o.MaxMessageBytes <= headroom:
		return fmt.Errorf("%w: servicebus MaxMessageBytes must be more than %d bytes, got %d", driver.ErrInvalidOption, headroom, o.MaxMessageBytes)
	case o.MaxRedeliveryDelay < 0:
		return fmt.Errorf("%w: servicebus MaxRedeliveryDelay must not be negative, got %v", driver.ErrInvalidOption, o.MaxRedeliveryDelay)
	case o.MaxConcurrentSessions < 0:
		return fmt.Errorf("%w: servicebus MaxConcurrentSessions must not be negative, got %d", driver.ErrInvalidOption, o.MaxConcurrentSessions)
	case o.SessionIdleTimeout < 0:
		return fmt.Errorf("%w: servicebus SessionIdleTimeout must not be negative, got %v", driver.ErrInvalidOption, o.SessionIdleTimeout)
	}
	switch o.PropertyPrefix {
	case "":
		o.PropertyPrefix = PropertyPrefix
	case PropertyPrefix, PropertyPrefixColon:
	default:
		return fmt.Errorf("%w: servicebus PropertyPrefix must be %q or %q, got %q", driver.ErrInvalidOption, PropertyPrefix, PropertyPrefixColon, o.PropertyPrefix)
	}
	o.LockDuration = cmp.Or(o.LockDuration, DefaultLockDuration)
	o.MaxMessageBytes = cmp.Or(o.MaxMessageBytes, DefaultMaxMessageBytes)
	o.MaxRedeliveryDelay = cmp.Or(o.MaxRedeliveryDelay, DefaultMaxRedeliveryDelay)
	o.MaxConcurrentSessions = cmp.Or(o.MaxConcurrentSessions, DefaultMaxConcurrentSessions)
	o.SessionIdleTimeout = cmp.Or(o.SessionIdleTimeout, DefaultSessionIdleTimeout)
	return nil
}

// optionsFromURL reads azuresb://NAMESPACE?queue=a,b&lockduration=30s&...
func optionsFromURL(u *url.URL) (Options, error) {
	var o Options
	if u.Path != "" && u.Path != "/" {
		return o, fmt.Errorf("%w: azuresb URL takes no path (name entities in Publish and Subscribe), got %q", driver.ErrInvalidURL, u.Path)
	}
	credential := ""
	params := providerkit.Params{
		{Name: "queue", Doc: "entities that are queues, comma-separated, repeatable", Each: true, Parse: func(v string) error {
			for _, q := range strings.Split(v, ",") {
				if q = strings.TrimSpace(q); q != "" {
					o.Queues = append(o.Queues, q)
				}
			}
			return nil
		}},
		providerkit.OneOf("credential", &credential, `"default" (azidentity's default chain) or "connectionstring"`,
			providerkit.Choice[string]{Text: "default", Value: "default"},
			providerkit.Choice[string]{Text: "connectionstring", Value: "connectionstring"}),
		providerkit.Duration("lockduration", &o.LockDuration, "the entities' lock duration"),
		providerkit.Int("maxmessagebytes", &o.MaxMessageBytes, "the tier's message size limit"),
		providerkit.Duration("maxredeliverydelay", &o.MaxRedeliveryDelay, "longest delay Nack honours by holding the lock"),
		providerkit.Int("sessions", &o.MaxConcurrentSessions, "sessions an ordered subscription works on at once"),
		providerkit.Duration("sessionidle", &o.SessionIdleTimeout, "how long a session receiver waits for another message"),
		providerkit.String("propertyprefix", &o.PropertyPrefix, "cloudEvents_ or cloudEvents:"),
		providerkit.Bool("autocreate", &o.AutoCreate, "create missing topics, subscriptions (with the route's filter as their rule) and queues"),
	}
	if err := params.Parse("azuresb URL", u.Query()); err != nil {
		return o, err
	}
	cs := os.Getenv(EnvConnectionString)
	if credential == "default" || credential == "" && cs == "" {
		if u.Host == "" {
			return o, fmt.Errorf("%w: azuresb URL needs the namespace host (azuresb://NAME.servicebus.windows.net) for credential=default, or set %s", driver.ErrInvalidURL, EnvConnectionString)
		}
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return o, fmt.Errorf("servicebus: default Azure credential: %w", err)
		}
		o.Namespace, o.Credential = u.Host, cred
		return o, nil
	}
	if cs == "" {
		return o, fmt.Errorf("%w: azuresb URL asks for credential=connectionstring but %s is not set", driver.ErrInvalidURL, EnvConnectionString)
	}
	if host := endpointHost(cs); u.Host != "" && !strings.EqualFold(host, u.Host) {
		return o, fmt.Errorf("%w: azuresb URL host %q differs from the endpoint %q of %s", driver.ErrInvalidURL, u.Host, host, EnvConnectionString)
	}
	o.ConnectionString = cs
	return o, nil
}

// endpointHost returns the host[:port] of a connection string's Endpoint.
func endpointHost(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		k, v, _ := strings.Cut(part, "=")
		if strings.EqualFold(strings.TrimSpace(k), "Endpoint") {
			if u, err := url.Parse(strings.TrimSpace(v)); err == nil {
				return u.Host
			}
		}
	}
	return ""
}

// Provider is the Azure Service Bus provider. It is safe for concurrent use.
type Provider struct {
	client     *azservicebus.Client
	ownsClient bool
	opts       Options
	queues     map[string]bool

	receivers providerkit.Receivers[driver.Receiver]

	mu      sync.Mutex
	senders map[string]*azservicebus.Sender

	probe *transportProbe // explains failures that say nothing

	adminOnce sync.Once
	admin     *admin.Client
	adminErr  error
}

// New returns a provider for the namespace that o names.
func New(ctx context.Context, o Options) (*Provider, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	p := &Provider{opts: o, queues: map[string]bool{}, senders: map[string]*azservicebus.Sender{},
		probe: &transportProbe{endpoint: o.endpoint()}}
	for _, q := range o.Queues {
		p.queues[strings.ToLower(q)] = true
	}
	var err error
	switch {
	case o.Client != nil:
		p.client = o.Client
	case o.ConnectionString != "":
		p.client, err = azservicebus.NewClientFromConnectionString(o.ConnectionString, o.ClientOptions)
		p.ownsClient = true
	case o.Namespace != "" && o.Credential != nil:
		p.client, err = azservicebus.NewClient(o.Namespace, o.Credential, o.ClientOptions)
		p.ownsClient = true
	default:
		return nil, fmt.Errorf("%w: servicebus Options need a Client, a ConnectionString, or a Namespace with a Credential", driver.ErrInvalidOption)
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: create client: %w", err)
	}
	return p, nil
}

// Capabilities reports Service Bus's native features: sessions for
// ordering, the dead-letter sub-queue, delayed redelivery (by holding the
// lock, see Nack), lock renewal, and the tier's size limit.
func (p *Provider) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Ordering:           true,
		NativeDeadLetter:   true,
		DelayedRedelivery:  true,
		MaxRedeliveryDelay: p.opts.MaxRedeliveryDelay,
		LeaseExtension:     true,
		MaxEventBytes:      p.opts.MaxMessageBytes - headroom,
		DefaultAckDeadline: p.opts.LockDuration,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (p *Provider) MessagingSystem() string { return "servicebus" }

// As sets *azservicebus.Client targets to the SDK client.
func (p *Provider) As(target any) bool {
	if c, ok := target.(**azservicebus.Client); ok {
		*c = p.client
		return true
	}
	return false
}

// Close closes the provider's receivers and senders, and the SDK client
// when the provider created it.
func (p *Provider) Close(ctx context.Context) error {
	first, err := p.receivers.Close(ctx)
	if !first {
		return nil
	}
	errs := []error{err}
	p.mu.Lock() // sender makes no sender once the receivers are closed
	senders := p.senders
	p.senders = map[string]*azservicebus.Sender{}
	p.mu.Unlock()
	for _, s := range senders {
		_ = s.Close(ctx)
	}
	if p.ownsClient {
		if err := p.client.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("servicebus: close client: %w", err))
		}
	}
	return errors.Join(errs...)
}

// entity is a queue, or a topic's subscription.
type entity struct {
	topic string
	sub   string
	queue bool
}

func (p *Provider) entity(topic, sub string) entity {
	return entity{topic: topic, sub: sub, queue: p.queues[strings.ToLower(topic)]}
}

// path is the entity path Service Bus uses.
func (e entity) path() string {
	if e.queue {
		return e.topic
	}
	return e.topic + "/Subscriptions/" + e.sub
}

func (e entity) notFound() error {
	if e.queue {
		return driver.ErrTopicNotFound
	}
	return driver.ErrSubscriptionNotFound
}
