package gcp

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// Options configure a Pub/Sub provider. The zero value of every field except
// Project (or Client) is valid; see each field for its default.
type Options struct {
	// Project is the Google Cloud project that owns topics and
	// subscriptions named without a "projects/" prefix. Required unless
	// Client is set.
	Project string
	// Client is an existing Pub/Sub client to use instead of dialling one.
	// The provider does not close it.
	Client *pubsub.Client
	// ClientOptions are passed to pubsub.NewClient (credentials, quota
	// project, ...).
	ClientOptions []option.ClientOption
	// Endpoint overrides the service address, "host:port": a regional
	// endpoint such as "us-east1-pubsub.googleapis.com:443" (ordering keys
	// are only ordered among messages published in one region), or an
	// emulator. PUBSUB_EMULATOR_HOST, honoured by the Pub/Sub client, is
	// the usual way to reach an emulator.
	Endpoint string
	// Insecure dials Endpoint without TLS and without credentials (for
	// emulators).
	Insecure bool

	// ContentMode is the CloudEvents content mode events are published in:
	// pubsubwire.Binary (the default; switches to structured per event
	// when the attributes break Pub/Sub's limits) or
	// pubsubwire.Structured.
	ContentMode pubsubwire.Mode
	// AttributeSpelling is how the attribute carrying datacontenttype (or,
	// in structured mode, the event format) is spelt: pubsubwire.GoogleSpelling
	// ("content-type", Google's binding; the default) or
	// pubsubwire.SDKSpelling ("Content-Type", the only spelling the
	// CloudEvents Go SDK's Pub/Sub binding reads). Both are always read.
	AttributeSpelling pubsubwire.Spelling
	// DisableOrderingKeys stops mapping the partitionkey extension onto
	// the message's ordering key (it still travels as ce-partitionkey).
	DisableOrderingKeys bool

	// PublishDelay, PublishCount and PublishBytes bound how long and how
	// much the client batches before a publish request (defaults: the
	// client's 10ms, 100 messages, 1 MB). Publish returns once every event
	// of the call is stored, so a shorter delay lowers latency.
	PublishDelay time.Duration
	PublishCount int
	PublishBytes int

	// MaxOutstandingMessages and MaxOutstandingBytes bound what one
	// receiver holds unsettled (defaults 1000 messages, 1 GB): Receive
	// pulls no more until deliveries are settled.
	MaxOutstandingMessages int
	MaxOutstandingBytes    int

	// AckDeadline is the lease of deliveries on routes that set none
	// (default: the subscription's ack deadline, 10s unless configured).
	AckDeadline time.Duration

	// AutoCreate creates a missing topic when publishing and a missing
	// topic or subscription when subscribing (for development and tests;
	// production entities are provisioned explicitly). A subscription it
	// creates gets the route's event pattern as its Pub/Sub filter (see
	// SubscriptionFilter).
	AutoCreate bool

	// Logger receives failures that happen after the call that caused
	// them returned, such as acknowledgements that could not be sent
	// (default: discarded).
	Logger *slog.Logger
}

const (
	maxLease      = 600 * time.Second // Pub/Sub's longest ack deadline
	defaultLease  = 10 * time.Second  // a subscription's default ack deadline
	maxPullBatch  = 1000              // most messages one Pull may ask for
	defaultMaxMsg = 1000
	defaultMaxB   = 1_000_000_000
)

func (o *Options) validate() error {
	switch {
	case o.Project == "" && o.Client == nil:
		return fmt.Errorf("%w: gcp: Options.Project is required (or Options.Client)", driver.ErrInvalidOption)
	case o.ContentMode != pubsubwire.Binary && o.ContentMode != pubsubwire.Structured:
		return fmt.Errorf("%w: gcp: Options.ContentMode %d is neither Binary nor Structured", driver.ErrInvalidOption, o.ContentMode)
	case o.AttributeSpelling != pubsubwire.GoogleSpelling && o.AttributeSpelling != pubsubwire.SDKSpelling:
		return fmt.Errorf("%w: gcp: Options.AttributeSpelling %d is neither GoogleSpelling nor SDKSpelling", driver.ErrInvalidOption, o.AttributeSpelling)
	case o.PublishDelay < 0:
		return fmt.Errorf("%w: gcp: Options.PublishDelay must not be negative, got %v", driver.ErrInvalidOption, o.PublishDelay)
	case o.PublishCount < 0 || o.PublishCount > pubsub.MaxPublishRequestCount:
		return fmt.Errorf("%w: gcp: Options.PublishCount must be 0..%d, got %d", driver.ErrInvalidOption, pubsub.MaxPublishRequestCount, o.PublishCount)
	case o.PublishBytes < 0 || o.PublishBytes > pubsub.MaxPublishRequestBytes:
		return fmt.Errorf("%w: gcp: Options.PublishBytes must be 0..%d, got %d", driver.ErrInvalidOption, int(pubsub.MaxPublishRequestBytes), o.PublishBytes)
	case o.MaxOutstandingMessages < 0:
		return fmt.Errorf("%w: gcp: Options.MaxOutstandingMessages must not be negative, got %d", driver.ErrInvalidOption, o.MaxOutstandingMessages)
	case o.MaxOutstandingBytes < 0:
		return fmt.Errorf("%w: gcp: Options.MaxOutstandingBytes must not be negative, got %d", driver.ErrInvalidOption, o.MaxOutstandingBytes)
	case o.AckDeadline < 0 || o.AckDeadline > maxLease:
		return fmt.Errorf("%w: gcp: Options.AckDeadline must be 0..%v, got %v", driver.ErrInvalidOption, maxLease, o.AckDeadline)
	}
	return nil
}

// OptionsFromURL parses "gcppubsub://projects/PROJECT?param=value&...". The
// parameters (all optional) are endpoint (host:port), insecure (bool),
// contentmode (binary|structured), attributespelling (google|sdk),
// orderingkeys (bool, default true),
// publishdelay (duration), publishcount, publishbytes,
// maxoutstandingmessages, maxoutstandingbytes, ackdeadline (duration) and
// autocreate (bool).
func OptionsFromURL(u *url.URL) (Options, error) {
	var o Options
	project := strings.TrimPrefix(u.Path, "/")
	if u.Host != "projects" || project == "" || strings.Contains(project, "/") || u.User != nil {
		return o, fmt.Errorf("%w: gcppubsub URL must be gcppubsub://projects/PROJECT, got %q", driver.ErrInvalidURL, u.Redacted())
	}
	o.Project = project
	if err := urlParams(&o).Parse("gcppubsub URL", u.Query()); err != nil {
		return o, err
	}
	if o.Insecure && o.Endpoint == "" {
		return o, fmt.Errorf("%w: gcppubsub URL parameter insecure=true needs endpoint=host:port", driver.ErrInvalidURL)
	}
	return o, o.validate()
}

// urlParams is the table of the query parameters of a gcppubsub URL.
func urlParams(o *Options) providerkit.Params {
	return providerkit.Params{
		providerkit.String("endpoint", &o.Endpoint, "host:port of the service or an emulator"),
		providerkit.Bool("insecure", &o.Insecure, "dial endpoint without TLS and credentials"),
		providerkit.OneOf("contentmode", &o.ContentMode, "binary or structured",
			providerkit.Choice[pubsubwire.Mode]{Text: "binary", Value: pubsubwire.Binary},
			providerkit.Choice[pubsubwire.Mode]{Text: "structured", Value: pubsubwire.Structured}),
		providerkit.OneOf("attributespelling", &o.AttributeSpelling, "google (content-type) or sdk (Content-Type, for CloudEvents Go SDK readers)",
			providerkit.Choice[pubsubwire.Spelling]{Text: "google", Value: pubsubwire.GoogleSpelling},
			providerkit.Choice[pubsubwire.Spelling]{Text: "sdk", Value: pubsubwire.SDKSpelling}),
		providerkit.Func("orderingkeys", "bool: map the partition key onto the ordering key (default true)", func(v string) error {
			on, err := strconv.ParseBool(v)
			o.DisableOrderingKeys = !on
			return err
		}),
		providerkit.Duration("publishdelay", &o.PublishDelay, "how long the client batches before a publish request"),
		providerkit.Int("publishcount", &o.PublishCount, "messages the client batches before a publish request"),
		providerkit.Int("publishbytes", &o.PublishBytes, "bytes the client batches before a publish request"),
		providerkit.Int("maxoutstandingmessages", &o.MaxOutstandingMessages, "unsettled messages one receiver holds"),
		providerkit.Int("maxoutstandingbytes", &o.MaxOutstandingBytes, "unsettled bytes one receiver holds"),
		providerkit.Duration("ackdeadline", &o.AckDeadline, "lease of deliveries on routes that set none"),
		providerkit.Bool("autocreate", &o.AutoCreate, "create missing topics and subscriptions"),
	}
}

// clientOptions returns the dial options the Options imply.
func (o *Options) clientOptions() []option.ClientOption {
	var opts []option.ClientOption
	if o.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		opts = append(opts, option.WithGRPCDialOption(insecureDial()), option.WithoutAuthentication())
	}
	return append(opts, o.ClientOptions...)
}

func (o *Options) publishSettings() pubsub.PublishSettings {
	s := pubsub.DefaultPublishSettings
	if o.PublishDelay > 0 {
		s.DelayThreshold = o.PublishDelay
	}
	if o.PublishCount > 0 {
		s.CountThreshold = o.PublishCount
	}
	if o.PublishBytes > 0 {
		s.ByteThreshold = o.PublishBytes
	}
	return s
}
