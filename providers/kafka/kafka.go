// Package kafka is the crossbus provider for Apache Kafka (and
// Kafka-compatible brokers), built on franz-go. Import it for its side effect
// to make "kafka://" URLs work:
//
//	import _ "github.com/crossbus/crossbus/providers/kafka"
//
//	crossbus.Open(ctx, "kafka://broker1:9092,broker2:9092")
//
// # Mapping
//
// A topic is a Kafka topic; a subscription is a consumer group whose id is
// "<topic>/<subscription>" (Provider.GroupID), so one subscription name can
// be used on several topics, as on every other provider, without their
// consumers sharing, and rebalancing, one group. Options.Groups (the URL's
// "group" parameter) names an existing group instead, such as one a service
// used before this scoping. A group made by crossbus (on first Subscribe
// with AutoCreate, or with CreateSubscription) starts at the end of every
// partition, so it receives the events published after it was created.
// Events travel in the CloudEvents Kafka binding's binary content mode: "ce_"
// headers, the "content-type" header for datacontenttype, the data as value
// and the partitionkey extension as record key (see EncodeRecord); structured
// content mode is read as well.
//
// # Delivery and offsets
//
// Offsets are committed only up to the first record of a partition that is
// not yet settled: with handlers running concurrently and finishing out of
// order, a commit never passes a record still in a handler, so a crash loses
// nothing (records after it may be handled again: at-least-once). Commits run
// every Options.CommitInterval, when partitions are revoked and on Close.
//
// Kafka cannot redeliver one record, so a Nack is served by the consumer
// itself: the record goes back to this consumer's handlers after the
// requested delay, decoded afresh (each handing is a copy, so what a handler
// changed in its event does not reach the next attempt), with the next
// attempt number, and its offset stays
// uncommitted meanwhile (the partition's other records keep flowing; on
// unordered routes a failing record does not hold up its neighbours). The
// provider therefore reports DelayedRedelivery. Ordered routes retry in
// place, so no later record of the key overtakes a failing one. When the
// consumer closes, or the partition is revoked, before the delay ends, the
// record is left uncommitted and its partition's next owner receives it.
// Attempt numbers are counted by the consumer: a record received again after
// a restart or rebalance starts at 1.
//
// # Dead letters
//
// Kafka has no dead-letter queue, so the provider keeps one per
// subscription: the topic DeadLetterTopic(topic, subscription), created on
// first use, and reports NativeDeadLetter. Delivery.DeadLetter produces the
// event with the crossbus dead-letter extensions there before its record
// counts as settled; SubscribeDeadLetters reads it from the start. A route's
// crossbus.WithDeadLetterTopic is the fallback when that topic refuses an
// event (for example when the cluster does not allow creating it).
//
// A record that is not a CloudEvent (or is a malformed one) is handed to the
// portable layer as a driver.Undecodable delivery whose event is the
// driver.NewUndecodableEvent placeholder: id "<topic>-<partition>-<offset>",
// source "/kafka/topics/<topic>", the value as data, the key in the rawkey
// extension (ExtRawKey) and the headers in the rawheaders extension. The
// portable layer dead-letters it (to the subscription's dead-letter topic,
// like any event) without running the handler, and the record then counts
// as settled. A dead-letter topic's reader hands such records out as
// undecodable deliveries too.
//
// # Receive errors
//
// A subscription whose topic is deleted while it runs (or deleted and
// created again: the consumer cannot follow the new topic) stops with
// driver.ErrTopicNotFound, and one whose credentials or ACLs the cluster
// refuses with driver.ErrUnauthorized (see Subscription.Err and
// Router.Run). Kafka does not delete a consumer group that has members, so
// a running subscription does not end with ErrSubscriptionNotFound.
// Retriable errors (leader changes, a topic that is not yet known to every
// broker) are retried by the client.
//
// # Ordering
//
// Records of one partition key go to one partition, and a partition is
// consumed by one member of a group at a time, so ordered routes
// (crossbus.WithOrdering) keep per-key order across consumers. When a
// partition is revoked the member stops taking its records, waits up to
// Options.RevokeTimeout for the ones in handlers, and commits before the
// partition moves; a handler that outlives that wait may overlap with the
// partition's next owner.
package kafka

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

func init() {
	crossbus.Register("kafka", providerkit.Opener(OptionsFromURL, New))
}

// Defaults of Options.
const (
	DefaultPartitions     = 3
	DefaultCommitInterval = time.Second
	DefaultPrefetch       = 256
	DefaultRevokeTimeout  = 20 * time.Second
	// DefaultMaxEventBytes stays under the default producer batch limit
	// (1,000,012 bytes) with room for record headers.
	DefaultMaxEventBytes = 1_000_000 - 16<<10

	// adminMetadataAge is the admin client's kgo.MetadataMinAge: how
	// long it may answer from the metadata it has (a topic created a
	// moment ago is seen after at most this long; franz-go's default is 5s).
	adminMetadataAge = 100 * time.Millisecond

	// closeFlushTimeout bounds Close's wait for records still being sent
	// when its context has no deadline.
	closeFlushTimeout = 10 * time.Second
)

// Options configure a Kafka provider. Brokers is required; zero fields take
// the documented defaults.
type Options struct {
	// Brokers are the seed brokers (host:port).
	Brokers []string
	// ClientOpts are added to every franz-go client the provider makes
	// (TLS, SASL, client id, timeouts).
	ClientOpts []kgo.Opt

	// AutoCreate creates topics and consumer groups the first time they are
	// used. Without it a missing topic fails with driver.ErrTopicNotFound
	// and a group with no committed offsets for the topic with
	// driver.ErrSubscriptionNotFound. URLs turn it on unless
	// "?autocreate=false".
	AutoCreate bool
	// Partitions of created topics (default 3).
	Partitions int32
	// ReplicationFactor of created topics (default -1: the broker's).
	ReplicationFactor int16

	// CommitInterval is how often settled offsets are committed (default 1s).
	CommitInterval time.Duration
	// Prefetch is how many records a consumer buffers ahead of its
	// handlers (default 256).
	Prefetch int
	// RevokeTimeout bounds how long a revoked partition waits for its
	// records in handlers before it is given up (default 20s; keep it under
	// the group's rebalance timeout).
	RevokeTimeout time.Duration
	// MaxEventBytes is the largest event accepted (default 983,616 bytes,
	// under Kafka's default 1 MB record limit).
	MaxEventBytes int
	// Groups maps subscriptions to the consumer groups that hold them,
	// for groups that already exist under other names. A key is
	// "<topic>/<subscription>" or a bare subscription name (on every
	// topic); a subscription not listed uses "<topic>/<subscription>".
	// In URLs: group=[<topic>/]<subscription>=<group>, repeatable.
	Groups map[string]string
	// Logger receives what the provider cannot return to a caller (commit
	// and fetch failures). Default: discard.
	Logger *slog.Logger
}

func (o *Options) fill() error {
	switch {
	case len(o.Brokers) == 0:
		return fmt.Errorf("%w: kafka needs at least one broker", driver.ErrInvalidOption)
	case o.Partitions < 0:
		return fmt.Errorf("%w: kafka Partitions must not be negative, got %d", driver.ErrInvalidOption, o.Partitions)
	case o.CommitInterval < 0 || o.RevokeTimeout < 0:
		return fmt.Errorf("%w: kafka CommitInterval and RevokeTimeout must not be negative", driver.ErrInvalidOption)
	case o.Prefetch < 0 || o.MaxEventBytes < 0:
		return fmt.Errorf("%w: kafka Prefetch and MaxEventBytes must not be negative", driver.ErrInvalidOption)
	}
	for k, g := range o.Groups {
		if k == "" || g == "" {
			return fmt.Errorf("%w: kafka Groups maps %q to %q: both must be non-empty", driver.ErrInvalidOption, k, g)
		}
	}
	o.Partitions = cmp.Or(o.Partitions, DefaultPartitions)
	o.ReplicationFactor = cmp.Or(o.ReplicationFactor, -1)
	o.CommitInterval = cmp.Or(o.CommitInterval, DefaultCommitInterval)
	o.Prefetch = cmp.Or(o.Prefetch, DefaultPrefetch)
	o.RevokeTimeout = cmp.Or(o.RevokeTimeout, DefaultRevokeTimeout)
	o.MaxEventBytes = cmp.Or(o.MaxEventBytes, DefaultMaxEventBytes)
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	return nil
}

// OptionsFromURL parses "kafka://broker1:9092[,broker2:9092]?..." into
// Options (AutoCreate on unless autocreate=false).
func OptionsFromURL(u *url.URL) (Options, error) {
	o := Options{AutoCreate: true}
	if u.Scheme != "kafka" {
		return o, fmt.Errorf("%w: scheme %q is not kafka", driver.ErrInvalidURL, u.Scheme)
	}
	if u.Host == "" {
		return o, fmt.Errorf("%w: kafka URL needs a broker (kafka://host:9092)", driver.ErrInvalidURL)
	}
	if u.Path != "" && u.Path != "/" {
		return o, fmt.Errorf("%w: kafka URL takes no path, got %q", driver.ErrInvalidURL, u.Path)
	}
	for _, b := range strings.Split(u.Host, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.Brokers = append(o.Brokers, b)
		}
	}
	if err := urlParams(&o).Parse("kafka URL", u.Query()); err != nil {
		return o, err
	}
	return o, nil
}

// urlParams is the table of the query parameters a kafka URL accepts.
func urlParams(o *Options) providerkit.Params {
	return providerkit.Params{
		providerkit.Bool("autocreate", &o.AutoCreate, "create topics and consumer groups on first use (default true)"),
		providerkit.Int("partitions", &o.Partitions, "partitions of created topics"),
		providerkit.Int("replication", &o.ReplicationFactor, "replication factor of created topics"),
		providerkit.Duration("commitinterval", &o.CommitInterval, "how often settled offsets are committed"),
		providerkit.Int("prefetch", &o.Prefetch, "records a consumer buffers ahead of its handlers"),
		providerkit.Duration("revoketimeout", &o.RevokeTimeout, "how long a revoked partition waits for its records in handlers"),
		providerkit.Int("maxeventbytes", &o.MaxEventBytes, "largest event accepted"),
		{Name: "group", Doc: "[<topic>/]<subscription>=<group>: the existing consumer group of a subscription (repeatable)", Each: true,
			Parse: func(v string) error {
				k, g, ok := strings.Cut(v, "=")
				if !ok || k == "" || g == "" {
					return fmt.Errorf("want [<topic>/]<subscription>=<group>")
				}
				if o.Groups == nil {
					o.Groups = map[string]string{}
				}
				o.Groups[k] = g
				return nil
			}},
		providerkit.Func("clientid", "the client id of every client", func(v string) error {
			o.ClientOpts = append(o.ClientOpts, kgo.ClientID(v))
			return nil
		}),
		providerkit.Func("tls", "bool: dial the brokers with TLS", func(v string) error {
			on, err := strconv.ParseBool(v)
			if on {
				o.ClientOpts = append(o.ClientOpts, kgo.DialTLS())
			}
			return err
		}),
	}
}

// Provider is the Kafka provider. It is safe for concurrent use.
type Provider struct {
	opts Options
	cl   *kgo.Client  // producer
	admc *kgo.Client  // administration: topics, groups, offsets, metadata
	adm  *kadm.Client // over admc

	topics sync.Map // topic name -> struct{}: known to exist

	receivers providerkit.Receivers[*receiver]
}

// New returns a provider talking to the brokers; it checks that they answer.
func New(ctx context.Context, o Options) (*Provider, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: brokers %s do not answer: %w", strings.Join(o.Brokers, ","), err)
	}
	// Administration has a client of its own with a short metadata age:
	// the calls that follow a topic's creation (its end offsets, a new
	// group's start) would otherwise wait out the 5s for which franz-go
	// trusts the metadata that did not have the topic yet. The producer
	// keeps franz-go's default, which spares the brokers metadata
	// requests while partitions move.
	admc, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...), kgo.MetadataMinAge(adminMetadataAge)}, o.ClientOpts...)...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: admin client: %w", err)
	}
	return &Provider{opts: o, cl: cl, admc: admc, adm: kadm.NewClient(admc)}, nil
}

// GroupID is the consumer group of a subscription of topic: the group
// Options.Groups names for "<topic>/<subscription>" or for the bare
// subscription, otherwise "<topic>/<subscription>" (Kafka topic names
// cannot contain '/', so no two topics' subscriptions share a group).
func (p *Provider) GroupID(topic, subscription string) string {
	if g, ok := p.opts.Groups[topic+"/"+subscription]; ok {
		return g
	}
	if g, ok := p.opts.Groups[subscription]; ok {
		return g
	}
	return topic + "/" + subscription
}

// Capabilities reports what Kafka does natively; see the package
// documentation.
func (p *Provider) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Ordering:          true,
		NativeDeadLetter:  true,
		DelayedRedelivery: true,
		LeaseExtension:    false,
		MaxEventBytes:     p.opts.MaxEventBytes,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (p *Provider) MessagingSystem() string { return "kafka" }

// As reaches the native clients: target may be a **kgo.Client (the
// producer) or a **kadm.Client (the admin client, on a kgo.Client of its
// own).
func (p *Provider) As(target any) bool {
	switch t := target.(type) {
	case **kgo.Client:
		*t = p.cl
	case **kadm.Client:
		*t = p.adm
	case **Provider:
		*t = p
	default:
		return false
	}
	return true
}

// Close stops every receiver (committing what they settled) and closes the
// clients.
func (p *Provider) Close(ctx context.Context) error {
	first, err := p.receivers.Close(ctx)
	if !first {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, closeFlushTimeout)
		defer cancel()
	}
	if err := p.cl.Flush(ctx); err != nil {
		p.opts.Logger.Warn("kafka: records still unsent at close", "error", err)
	}
	p.cl.Close()
	p.admc.Close()
	return err
}

func (p *Provider) isClosed() bool { return p.receivers.Closed() }

var _ driver.Provider = (*Provider)(nil)
