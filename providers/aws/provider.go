package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

// Service names the AWS service Publish sends to.
type Service string

// The services Publish can send to. Consuming is always from SQS queues.
const (
	SQS         Service = "sqs"
	SNS         Service = "sns"
	EventBridge Service = "eventbridge"
)

// Service limits the provider declares (see Capabilities).
const (
	// MaxSQSMessageBytes is SQS's largest message (and batch): 1 MiB.
	MaxSQSMessageBytes = 1 << 20
	// MaxSNSMessageBytes is SNS's default largest message (and batch):
	// 256 KiB; topics can raise it with MaximumMessageSize.
	MaxSNSMessageBytes = 256 << 10
	// MaxEventBridgeBytes is the EventBridge PutEvents entry limit as its
	// API reference states it: 256 KB for all entries of a call.
	MaxEventBridgeBytes = 256 << 10
	// MaxDetailType is the longest EventBridge DetailType (a CloudEvent
	// type maps onto it).
	MaxDetailType = 128
	// MaxVisibility is SQS's longest visibility timeout, which bounds nack
	// delays and leases.
	MaxVisibility = 12 * time.Hour
	maxBatch      = 10
)

// Options configure a Provider. The zero value publishes to and consumes
// from SQS with the default AWS configuration chain.
type Options struct {
	// Publish is the service Publish sends to: SQS (default), SNS or
	// EventBridge.
	Publish Service
	// Config is the AWS configuration (region, credentials, retries, HTTP
	// client). nil loads the default chain: environment, shared config and
	// credentials files, SSO, web identity, container and instance roles.
	Config *awssdk.Config
	// Region overrides the configuration's region.
	Region string
	// Endpoint overrides the endpoint of every service, for emulators and
	// tests (for example an awstest.Server's URL).
	Endpoint string
	// Target is the bus, topic ARN or queue URL the provider was opened
	// for (the URL's host or path). Topic names Publish gets resolve
	// against it: an SNS topic name becomes an ARN in Target's account and
	// region.
	Target string
	// Topics maps a topic name given to Publish to where its events go:
	// bus names or ARNs (EventBridge), topic names or ARNs (SNS), queue
	// names or URLs (SQS). ok=false falls back to the topic name itself;
	// ok=true with no targets accepts and drops the events (a topic nobody
	// subscribed to). Several targets get each event in turn (for SQS, a
	// fan-out without SNS); an event that failed at any target is reported
	// failed, and retrying it may repeat it at the targets that took it.
	Topics func(topic string) (targets []string, ok bool)
	// Queues maps subscription names to queue URLs, for queues that
	// GetQueueUrl cannot find by name (another account). Other names are
	// looked up with GetQueueUrl, trying name+".fifo" too.
	Queues map[string]string
	// Mode is how events are put in SQS and SNS messages (default
	// Structured).
	Mode Mode
	// WaitTime is the long-polling wait of ReceiveMessage (default and
	// maximum 20s).
	WaitTime time.Duration
	// SyncAck makes Delivery.Ack wait until the message is deleted and
	// return the delete's error. By default Ack queues the delete, which
	// is sent in a DeleteMessageBatch with other acks, and returns at once:
	// a failed delete is logged and the message comes back after its
	// visibility timeout (at-least-once either way). Receiver.Close waits
	// for queued deletes.
	SyncAck bool
	// MaxEventBytes lowers the event size limit (default: the service's,
	// see MaxSQSMessageBytes and friends).
	MaxEventBytes int
	// SkipBusCheck turns off the one DescribeEventBus call per bus before
	// the first PutEvents to it. EventBridge accepts events for a bus that
	// does not exist and drops them; the check turns that into
	// driver.ErrTopicNotFound.
	SkipBusCheck bool
	// PublishAttempts bounds the attempts for batch entries that fail with
	// a retryable code (throttling, internal failure) (default 5).
	PublishAttempts int
	// Logger receives what cannot be returned to a caller (failed queued
	// deletes). Default: discarded.
	Logger *slog.Logger
}

// Provider is the AWS provider. It publishes to SQS, SNS or EventBridge and
// consumes from SQS queues. It is safe for concurrent use.
type Provider struct {
	opts Options
	sqs  *sqs.Client
	sns  *sns.Client
	eb   *eventbridge.Client

	queueURLs sync.Map // name -> URL
	topicARNs sync.Map // SNS topic name -> ARN
	buses     sync.Map // EventBridge buses known to exist

	receivers providerkit.Receivers[*receiver]

	// life ends the receive polls that outlive their receivers (see
	// providerkit.Polls); polls counts them.
	life    context.Context
	endLife context.CancelFunc
	polls   sync.WaitGroup
}

// New returns a Provider. ctx bounds loading the AWS configuration.
func New(ctx context.Context, o Options) (*Provider, error) {
	switch o.Publish {
	case "":
		o.Publish = SQS
	case SQS, SNS, EventBridge:
	default:
		return nil, fmt.Errorf("%w: aws Publish service %q (want sqs, sns or eventbridge)", driver.ErrInvalidOption, o.Publish)
	}
	if o.WaitTime < 0 || o.WaitTime > 20*time.Second {
		return nil, fmt.Errorf("%w: aws WaitTime %v is outside 0..20s", driver.ErrInvalidOption, o.WaitTime)
	}
	o.WaitTime = cmp.Or(o.WaitTime, 20*time.Second)
	if o.MaxEventBytes < 0 {
		return nil, fmt.Errorf("%w: aws MaxEventBytes %d is negative", driver.ErrInvalidOption, o.MaxEventBytes)
	}
	if o.PublishAttempts <= 0 {
		o.PublishAttempts = 5
	}
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	var cfg awssdk.Config
	if o.Config != nil {
		cfg = o.Config.Copy()
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
			return nil, fmt.Errorf("aws: load configuration: %w", err)
		}
	}
	if o.Region != "" {
		cfg.Region = o.Region
	}
	if o.Endpoint != "" {
		cfg.BaseEndpoint = awssdk.String(o.Endpoint)
	}
	p := &Provider{opts: o,
		sqs: sqs.NewFromConfig(cfg), sns: sns.NewFromConfig(cfg), eb: eventbridge.NewFromConfig(cfg)}
	for name, u := range o.Queues {
		p.queueURLs.Store(name, u)
	}
	p.life, p.endLife = context.WithCancel(context.Background())
	return p, nil
}

// Capabilities reports what the provider does natively. Receivers refine it
// per queue (see ReceiverCapabilities): Ordering on FIFO queues, and
// NativeDeadLetter only when the queue has a RedrivePolicy.
func (p *Provider) Capabilities() driver.Capabilities {
	limit := MaxSQSMessageBytes
	switch p.opts.Publish {
	case SNS:
		limit = MaxSNSMessageBytes
	case EventBridge:
		limit = MaxEventBridgeBytes
	}
	if p.opts.MaxEventBytes > 0 && p.opts.MaxEventBytes < limit {
		limit = p.opts.MaxEventBytes
	}
	return driver.Capabilities{
		NativeDeadLetter:   true,
		DelayedRedelivery:  true,
		MaxRedeliveryDelay: MaxVisibility,
		LeaseExtension:     true,
		MaxEventBytes:      limit,
		MaxBatchCount:      maxBatch,
		MaxBatchBytes:      limit,
		DefaultAckDeadline: 30 * time.Second,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem):
// the service it publishes to (consuming is always from SQS).
func (p *Provider) MessagingSystem() string {
	switch p.opts.Publish {
	case SNS:
		return "aws_sns"
	case EventBridge:
		return "aws_eventbridge"
	}
	return "aws_sqs"
}

// As reaches the native clients: target may be a **sqs.Client, **sns.Client
// or **eventbridge.Client.
func (p *Provider) As(target any) bool {
	switch t := target.(type) {
	case **sqs.Client:
		*t = p.sqs
	case **sns.Client:
		*t = p.sns
	case **eventbridge.Client:
		*t = p.eb
	default:
		return false
	}
	return true
}

// Close stops every receiver opened from the provider, waiting (until ctx
// ends) for their queued deletes, and ends the long polls still running.
func (p *Provider) Close(ctx context.Context) error {
	first, err := p.receivers.Close(ctx)
	if first {
		p.endLife()
		providerkit.Wait(ctx, &p.polls)
	}
	return err
}

// Publish sends events to the topic's targets (see Options.Topics), in
// order, through the service the provider publishes to.
func (p *Provider) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	if p.receivers.Closed() {
		return fmt.Errorf("aws: publish to %q: %w", topic, driver.ErrClosed)
	}
	targets := []string{topic}
	if p.opts.Topics != nil {
		if t, ok := p.opts.Topics(topic); ok {
			targets = t
		}
	}
	if len(targets) == 1 {
		return p.publishTo(ctx, targets[0], events)
	}
	failed := map[int]error{}
	for _, target := range targets {
		err := p.publishTo(ctx, target, events)
		var pe *crossbus.PublishError
		switch {
		case err == nil:
		case errors.As(err, &pe):
			for _, f := range pe.Failed {
				failed[f.Index] = errors.Join(failed[f.Index], fmt.Errorf("target %s: %w", target, f.Err))
			}
		default:
			for i := range events {
				failed[i] = errors.Join(failed[i], fmt.Errorf("target %s: %w", target, err))
			}
		}
	}
	return publishError(events, failed)
}

func (p *Provider) publishTo(ctx context.Context, target string, events []*driver.Event) error {
	switch p.opts.Publish {
	case SNS:
		return p.publishSNS(ctx, target, events)
	case EventBridge:
		return p.publishEventBridge(ctx, target, events)
	default:
		return p.publishSQS(ctx, target, events)
	}
}

// publishError builds the result of a batch from per-event failures.
func publishError(events []*driver.Event, failed map[int]error) error {
	if len(failed) == 0 {
		return nil
	}
	pe := &crossbus.PublishError{}
	for i := range events {
		if err, ok := failed[i]; ok {
			pe.Failed = append(pe.Failed, crossbus.EventError{Index: i, EventID: events[i].ID(), Err: err})
		}
	}
	return pe
}

// queueURL resolves a queue name (or URL) to its URL, trying the ".fifo"
// name too; notFound is the sentinel to wrap when neither exists.
func (p *Provider) queueURL(ctx context.Context, name string, notFound error) (string, error) {
	if strings.Contains(name, "://") {
		return name, nil
	}
	if u, ok := p.queueURLs.Load(name); ok {
		return u.(string), nil
	}
	candidates := []string{name}
	if !isFIFO(name) {
		candidates = append(candidates, name+".fifo")
	}
	var firstErr error
	for _, n := range candidates {
		out, err := p.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: awssdk.String(n)})
		if err == nil {
			p.queueURLs.Store(name, *out.QueueUrl)
			return *out.QueueUrl, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if !isNotFound(err) {
			break
		}
	}
	return "", mapErr(fmt.Errorf("aws: queue %q: %w", name, firstErr), notFound)
}
