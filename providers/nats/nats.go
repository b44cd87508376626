// Package nats is the crossbus provider for NATS JetStream. Import it for its
// side effect to make two URL schemes work:
//
//	import _ "github.com/crossbus/crossbus/providers/nats"
//
//	crossbus.Open(ctx, "nats://host:4222")               // an existing server or cluster
//	crossbus.Open(ctx, "nats+embedded:///var/lib/app/bus") // an in-process server storing in that directory
//
// The embedded form starts a JetStream server inside the program with file
// storage in the directory, so events survive a restart of the program; it
// is shut down by Close. One program at a time may use a directory. Writes
// reach the operating system at once but are flushed to the disk every two
// minutes (JetStream's default); set "?sync=always" (Options.EmbeddedSyncAlways)
// to flush every write when a machine crash must not lose acknowledged
// events. Point the URL at a NATS cluster when one machine is no longer
// enough: nothing else changes.
//
// # Mapping
//
// A topic is a NATS subject (with Options.SubjectPrefix in front). Publish
// finds the stream that captures the subject, or creates one named after the
// topic when AutoCreate is on. A subscription is a durable pull consumer of
// that stream filtered on the subject, created on first Subscribe (or with
// CreateSubscription); it receives the events published after it was
// created. Events travel in the CloudEvents NATS binding's binary content
// mode: "ce-" headers and the data as payload (see EncodeMsg); structured
// content mode is read as well. Nats-Msg-Id carries the event's id scoped by
// its source, so a re-published event is dropped by JetStream's duplicate
// window.
//
// # Delivery
//
// Ack, Nack with delay (NakWithDelay), lease extension while a handler runs
// (InProgress) and the delivery count as the attempt number are native.
// JetStream has no dead-letter queue of its own, so the provider keeps one
// per subscription in a work-queue stream (see DeadLetterTopic and
// SubscribeDeadLetters) and reports NativeDeadLetter. A route's
// crossbus.WithDeadLetterTopic is the fallback when that queue refuses an
// event. Options.MaxDeliver sets a server-side delivery limit as a backstop;
// by default there is none and the route's retry policy decides when to
// dead-letter.
//
// A message that is not a CloudEvent (or is a malformed one) is handed to the
// portable layer as a driver.Undecodable delivery whose event is the
// driver.NewUndecodableEvent placeholder: id "<stream>-<sequence>", source
// "/nats/streams/<stream>", subject the message's subject, the payload as
// data and the headers in the rawheaders extension. The portable layer
// dead-letters it (into the subscription's dead-letter queue, like any
// event) without running the handler. A dead-letter queue's reader hands
// such messages out as undecodable deliveries too.
//
// # Receive errors
//
// A subscription whose durable consumer is deleted while it runs stops with
// driver.ErrSubscriptionNotFound, one whose stream is deleted with
// driver.ErrTopicNotFound, and one whose credentials or permissions the
// server refuses with driver.ErrUnauthorized (see Subscription.Err and
// Router.Run); AutoCreate does not bring a deleted consumer back under a
// running subscription. Disconnects, server restarts and leader changes are
// transient: the receiver pulls again.
//
// # Ordering
//
// A JetStream consumer delivers in stream order, but competing clients of
// one consumer each get different messages, so two events of one key could
// be handled at once in two processes. A subscription opened with
// SubscriptionSpec.Ordered (crossbus.WithOrdering) therefore uses a consumer
// with the "pinned client" priority policy (nats-server 2.11 or later; it is
// set when crossbus creates the consumer): the server sends its messages to
// one client at a time. Inside that process the portable layer keeps per-key
// order and runs different keys in parallel. A pinned client that closes
// gracefully (its events settled) releases the pin, so another client takes
// over at once; one that crashes or stalls keeps it until it has not pulled
// for Options.PinnedTTL. After a crash, the events the old client had not
// settled are redelivered after their ack wait, after newer events of their
// key that the new client has already received, so order across a crash is
// not kept; Capabilities.Ordering is reported false for that reason. The
// recipe that restores it: stamp a per-key sequence when publishing
// (sequence.Stamper) and apply events through sequence.LatestWins with a
// store the processes share (see the example "OrderAcrossACrash"), or, where
// every event must be applied in order, use sequence.Resequence on an
// unordered route.
package nats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

func init() {
	crossbus.Register("nats", providerkit.Opener(OptionsFromURL, New))
	crossbus.Register("nats+embedded", providerkit.Opener(OptionsFromURL, New))
}

// Defaults of Options.
const (
	DefaultAckWait         = 30 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultMaxAckPending   = 1000
	DefaultPrefetch        = 256
	DefaultPinnedTTL       = 30 * time.Second
	// publishAckTimeout bounds the wait for a stream's acknowledgement of
	// one publish when the caller's context has no earlier deadline.
	publishAckTimeout = 30 * time.Second
	// headerRoom is kept free of the server's max payload for the headers
	// when MaxEventBytes is derived from it.
	headerRoom = 8 << 10
)

// Options configure a NATS provider. The zero value connects to nothing:
// set Servers, Conn or EmbeddedDir. Zero fields take the documented defaults.
type Options struct {
	// Servers is a comma-separated list of NATS URLs ("nats://a:4222,nats://b:4222").
	Servers string
	// Conn is an open connection to use instead of dialling Servers. The
	// provider does not close it.
	Conn *natsio.Conn
	// ConnOptions are passed to nats.Connect (credentials, TLS, names).
	ConnOptions []natsio.Option

	// EmbeddedDir starts an in-process JetStream server that stores its
	// data in this directory (created if missing). Close shuts it down.
	EmbeddedDir string
	// EmbeddedListen makes the embedded server also accept clients on a
	// host:port (e.g. "127.0.0.1:4222"); by default only this process
	// connects, in-process.
	EmbeddedListen string
	// EmbeddedSyncAlways flushes every write of the embedded server to disk
	// before it is acknowledged (slower; survives a machine crash).
	EmbeddedSyncAlways bool

	// AutoCreate creates streams and consumers the first time a topic or
	// subscription is used. Without it, a topic no stream captures fails
	// with driver.ErrTopicNotFound and a missing consumer with
	// driver.ErrSubscriptionNotFound. URLs turn it on unless
	// "?autocreate=false".
	AutoCreate bool
	// SubjectPrefix is put in front of every topic to make its subject.
	SubjectPrefix string
	// StreamPrefix is put in front of the names of streams crossbus creates.
	StreamPrefix string

	// Storage of created streams (default file).
	Storage jetstream.StorageType
	// Replicas of created streams and consumers (default 1).
	Replicas int
	// Retention of created streams (default limits: messages stay until
	// MaxAge or MaxBytes remove them; set one of them).
	Retention jetstream.RetentionPolicy
	// MaxAge and MaxBytes bound created streams (0 = unlimited).
	MaxAge   time.Duration
	MaxBytes int64
	// DuplicateWindow of created streams: how long a Nats-Msg-Id is
	// remembered for de-duplication (default 2m).
	DuplicateWindow time.Duration

	// AckWait is the default lease of a delivery (default 30s); a
	// subscription's ack deadline sets its consumer's AckWait.
	AckWait time.Duration
	// MaxDeliver is the consumer's server-side delivery limit (0 =
	// unlimited: the route's retry policy decides when to dead-letter).
	// When set it must be larger than every route's MaxAttempts.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged messages per consumer (default 1000).
	MaxAckPending int
	// Prefetch is how many messages a receiver buffers ahead of its
	// handlers (default 256).
	Prefetch int
	// PinnedTTL is how long an ordered subscription's pinned client may go
	// without pulling before another client takes over (default 30s).
	PinnedTTL time.Duration
	// MaxEventBytes is the largest event accepted (default: the server's
	// max payload less 8 KiB for headers).
	MaxEventBytes int
	// HeaderValues is how ce- header values are written and read (URL:
	// headervalues=verbatim|percent). The default, HeaderValuesVerbatim,
	// round-trips with the CloudEvents Go SDK's NATS and JetStream
	// bindings; HeaderValuesPercent follows the percent-encoding of the
	// NATS binding's working draft. Publishers and subscribers of a subject
	// must agree.
	HeaderValues HeaderValues
	// Logger receives what the provider cannot return to a caller
	// (pull failures). Default: discard.
	Logger *slog.Logger
}

func (o *Options) fill() error {
	switch {
	case o.Replicas < 0:
		return fmt.Errorf("%w: nats Replicas must not be negative, got %d", driver.ErrInvalidOption, o.Replicas)
	case o.MaxAge < 0 || o.MaxBytes < 0:
		return fmt.Errorf("%w: nats MaxAge and MaxBytes must not be negative", driver.ErrInvalidOption)
	case o.DuplicateWindow < 0 || o.AckWait < 0 || o.PinnedTTL < 0:
		return fmt.Errorf("%w: nats DuplicateWindow, AckWait and PinnedTTL must not be negative", driver.ErrInvalidOption)
	case o.MaxDeliver < 0 || o.MaxAckPending < 0 || o.Prefetch < 0 || o.MaxEventBytes < 0:
		return fmt.Errorf("%w: nats MaxDeliver, MaxAckPending, Prefetch and MaxEventBytes must not be negative", driver.ErrInvalidOption)
	case o.Conn == nil && o.EmbeddedDir == "" && o.Servers == "":
		return fmt.Errorf("%w: nats needs Servers, Conn or EmbeddedDir", driver.ErrInvalidOption)
	case o.EmbeddedListen != "" && o.EmbeddedDir == "":
		return fmt.Errorf("%w: nats EmbeddedListen needs EmbeddedDir", driver.ErrInvalidOption)
	case o.HeaderValues != HeaderValuesVerbatim && o.HeaderValues != HeaderValuesPercent:
		return fmt.Errorf("%w: nats HeaderValues %d is neither HeaderValuesVerbatim nor HeaderValuesPercent", driver.ErrInvalidOption, o.HeaderValues)
	case o.EmbeddedDir != "" && !filepath.IsAbs(o.EmbeddedDir):
		return fmt.Errorf("%w: nats EmbeddedDir %q must be an absolute path", driver.ErrInvalidOption, o.EmbeddedDir)
	}
	if o.SubjectPrefix != "" {
		if err := validSubject(o.SubjectPrefix + "x"); err != nil {
			return fmt.Errorf("%w: nats SubjectPrefix %q: %v", driver.ErrInvalidOption, o.SubjectPrefix, err)
		}
	}
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	o.Replicas = cmp.Or(o.Replicas, 1)
	o.DuplicateWindow = cmp.Or(o.DuplicateWindow, DefaultDuplicateWindow)
	o.AckWait = cmp.Or(o.AckWait, DefaultAckWait)
	o.MaxAckPending = cmp.Or(o.MaxAckPending, DefaultMaxAckPending)
	o.Prefetch = cmp.Or(o.Prefetch, DefaultPrefetch)
	o.PinnedTTL = cmp.Or(o.PinnedTTL, DefaultPinnedTTL)
	return nil
}

// OptionsFromURL parses a "nats://host:4222[,host2:4222]?..." or
// "nats+embedded:///abs/dir?..." URL into Options (AutoCreate on unless
// autocreate=false).
func OptionsFromURL(u *url.URL) (Options, error) {
	o := Options{AutoCreate: true}
	switch u.Scheme {
	case "nats+embedded":
		if u.Host != "" {
			return o, fmt.Errorf("%w: nats+embedded URL takes an absolute directory path and no host (nats+embedded:///path), got host %q", driver.ErrInvalidURL, u.Host)
		}
		if !strings.HasPrefix(u.Path, "/") || len(u.Path) < 2 {
			return o, fmt.Errorf("%w: nats+embedded URL needs an absolute directory path (nats+embedded:///path), got %q", driver.ErrInvalidURL, u.Path)
		}
		o.EmbeddedDir = u.Path
	case "nats":
		if u.Host == "" {
			return o, fmt.Errorf("%w: nats URL needs a host (nats://host:4222)", driver.ErrInvalidURL)
		}
		var servers []string
		for _, h := range strings.Split(u.Host, ",") {
			s := url.URL{Scheme: "nats", User: u.User, Host: strings.TrimSpace(h)}
			servers = append(servers, s.String())
		}
		o.Servers = strings.Join(servers, ",")
	default:
		return o, fmt.Errorf("%w: scheme %q is not nats or nats+embedded", driver.ErrInvalidURL, u.Scheme)
	}
	if err := urlParams(&o).Parse("nats URL", u.Query()); err != nil {
		return o, err
	}
	return o, nil
}

// urlParams is the table of the query parameters a nats URL accepts.
func urlParams(o *Options) providerkit.Params {
	return providerkit.Params{
		providerkit.Bool("autocreate", &o.AutoCreate, "create streams and consumers on first use (default true)"),
		providerkit.String("subjectprefix", &o.SubjectPrefix, "put in front of every topic to make its subject"),
		providerkit.String("streamprefix", &o.StreamPrefix, "put in front of the names of created streams"),
		providerkit.OneOf("storage", &o.Storage, "storage of created streams: file or memory",
			providerkit.Choice[jetstream.StorageType]{Text: "file", Value: jetstream.FileStorage},
			providerkit.Choice[jetstream.StorageType]{Text: "memory", Value: jetstream.MemoryStorage}),
		providerkit.Int("replicas", &o.Replicas, "replicas of created streams and consumers"),
		providerkit.OneOf("retention", &o.Retention, "retention of created streams: limits or interest",
			providerkit.Choice[jetstream.RetentionPolicy]{Text: "limits", Value: jetstream.LimitsPolicy},
			providerkit.Choice[jetstream.RetentionPolicy]{Text: "interest", Value: jetstream.InterestPolicy}),
		providerkit.Duration("maxage", &o.MaxAge, "age bound of created streams"),
		providerkit.Int("maxbytes", &o.MaxBytes, "size bound of created streams"),
		providerkit.Duration("dupwindow", &o.DuplicateWindow, "duplicate window of created streams"),
		providerkit.Duration("ackwait", &o.AckWait, "default lease of a delivery"),
		providerkit.Int("maxdeliver", &o.MaxDeliver, "server-side delivery limit of consumers"),
		providerkit.Int("maxackpending", &o.MaxAckPending, "unacknowledged messages per consumer"),
		providerkit.Int("prefetch", &o.Prefetch, "messages a receiver buffers ahead of its handlers"),
		providerkit.Duration("pinnedttl", &o.PinnedTTL, "how long a pinned client may go without pulling"),
		providerkit.Int("maxeventbytes", &o.MaxEventBytes, "largest event accepted"),
		providerkit.OneOf("headervalues", &o.HeaderValues, "verbatim (as the CloudEvents Go SDK) or percent (the NATS binding's working draft)",
			providerkit.Choice[HeaderValues]{Text: "verbatim", Value: HeaderValuesVerbatim},
			providerkit.Choice[HeaderValues]{Text: "percent", Value: HeaderValuesPercent}),
		providerkit.Func("name", "the connection's name", func(v string) error {
			o.ConnOptions = append(o.ConnOptions, natsio.Name(v))
			return nil
		}),
		providerkit.Func("listen", "nats+embedded only: host:port the embedded server also accepts clients on", func(v string) error {
			if o.EmbeddedDir == "" {
				return errors.New("only nats+embedded URLs listen")
			}
			if _, _, err := net.SplitHostPort(v); err != nil {
				return err
			}
			o.EmbeddedListen = v
			return nil
		}),
		providerkit.Func("sync", "nats+embedded only: always or interval (how the embedded server flushes writes)", func(v string) error {
			switch {
			case o.EmbeddedDir == "":
				return errors.New("only nats+embedded URLs take sync")
			case v == "always":
				o.EmbeddedSyncAlways = true
			case v != "interval":
				return errors.New("want always or interval")
			}
			return nil
		}),
	}
}

// Provider is the NATS JetStream provider. It is safe for concurrent use.
type Provider struct {
	opts     Options
	srv      *server.Server // the embedded server, or nil
	conn     *natsio.Conn
	ownsConn bool
	js       jetstream.JetStream
	maxEvent int
	codec    Codec

	topics sync.Map // topic name -> *topicInfo

	receivers providerkit.Receivers[*receiver]

	dlqMu      sync.Mutex
	dlqReaders map[string]int // open dead-letter readers by stream
}

// topicInfo is where a topic's events go.
type topicInfo struct {
	subject string
	stream  string
}

// New connects a provider (starting the embedded server first when
// EmbeddedDir is set).
func New(ctx context.Context, o Options) (*Provider, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	p := &Provider{opts: o, codec: Codec{HeaderValues: o.HeaderValues}}
	switch {
	case o.Conn != nil:
		p.conn = o.Conn
	case o.EmbeddedDir != "":
		srv, err := startEmbedded(o.EmbeddedDir, o.EmbeddedListen, o.EmbeddedSyncAlways)
		if err != nil {
			return nil, err
		}
		p.srv = srv
		opts := append([]natsio.Option{natsio.InProcessServer(srv), natsio.Name("crossbus-embedded"), natsio.MaxReconnects(-1)}, o.ConnOptions...)
		conn, err := natsio.Connect("", opts...)
		if err != nil {
			stopEmbedded(srv)
			return nil, fmt.Errorf("nats: connect to embedded server: %w", err)
		}
		p.conn, p.ownsConn = conn, true
	default:
		opts := append([]natsio.Option{natsio.MaxReconnects(-1)}, o.ConnOptions...)
		conn, err := natsio.Connect(o.Servers, opts...)
		if err != nil {
			return nil, fmt.Errorf("nats: connect to %s: %w", redactServers(o.Servers), err)
		}
		p.conn, p.ownsConn = conn, true
	}
	js, err := jetstream.New(p.conn, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		p.closeConn()
		return nil, fmt.Errorf("nats: JetStream context: %w", err)
	}
	p.js = js
	if _, err := js.AccountInfo(ctx); err != nil {
		p.closeConn()
		return nil, fmt.Errorf("nats: JetStream is not available on the server: %w", err)
	}
	p.maxEvent = cmp.Or(o.MaxEventBytes, max(int(p.conn.MaxPayload())-headerRoom, 1))
	return p, nil
}

func redactServers(s string) string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if u, err := url.Parse(part); err == nil {
			out = append(out, u.Redacted())
		} else {
			out = append(out, "<invalid URL>")
		}
	}
	return strings.Join(out, ",")
}

// Capabilities reports what JetStream does natively; see the package
// documentation for ordering and dead-lettering.
func (p *Provider) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Ordering:           false,
		NativeDeadLetter:   true,
		DelayedRedelivery:  true,
		LeaseExtension:     true,
		MaxEventBytes:      p.maxEvent,
		DefaultAckDeadline: p.opts.AckWait,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (p *Provider) MessagingSystem() string { return "nats" }

// As reaches the native clients: target may be a **nats.Conn, a
// *jetstream.JetStream or, for the embedded form, a **server.Server.
func (p *Provider) As(target any) bool {
	switch t := target.(type) {
	case **natsio.Conn:
		*t = p.conn
	case *jetstream.JetStream:
		*t = p.js
	case **server.Server:
		if p.srv == nil {
			return false
		}
		*t = p.srv
	case **Provider:
		*t = p
	default:
		return false
	}
	return true
}

// Close stops every receiver, flushes and closes the connection (unless it
// was given in Options.Conn) and shuts the embedded server down.
func (p *Provider) Close(ctx context.Context) error {
	first, err := p.receivers.Close(ctx)
	if first {
		p.closeConn()
	}
	return err
}

func (p *Provider) closeConn() {
	if p.ownsConn && p.conn != nil {
		if p.conn.IsConnected() {
			_ = p.conn.FlushTimeout(5 * time.Second)
		}
		p.conn.Close()
	}
	if p.srv != nil {
		stopEmbedded(p.srv)
	}
}

func (p *Provider) isClosed() bool { return p.receivers.Closed() }
