package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/eventpattern"
)

// Route is what Provision sets up for one subscription. Provisioning is for
// development and tests; production infrastructure belongs in your
// infrastructure-as-code, and crossbus never provisions on its own.
type Route struct {
	// Subscription names the queue to create (".fifo" is added for FIFO).
	Subscription string
	// Topic is the EventBridge bus or SNS topic (name or ARN) the queue
	// receives from. The SQS service ignores it.
	Topic string
	// Filter is the route's filter (a crossbus event pattern). For
	// EventBridge the rule gets its translation by RulePattern, so only
	// matching events reach the queue. For SNS in Structured mode the
	// subscription gets the filter policy SNSFilterPolicy writes (scope
	// MessageBody), a superset of the filter, so most other events never
	// reach the queue (in Binary mode events may fall back to structured,
	// so no policy is set). The route still runs the filter too.
	Filter crossbus.Filter
	// Pattern is the rule's event pattern over the EventBridge envelope,
	// for events crossbus did not publish (AWS service events); it
	// overrides Filter. With neither, the rule matches every event of the
	// bus.
	Pattern string
	// FIFO creates FIFO queues.
	FIFO bool
	// MaxReceiveCount, when positive, creates the dead-letter queue
	// "<subscription>-dlq" and a RedrivePolicy moving messages there after
	// that many receives (set it to the retry policy's MaxAttempts).
	MaxReceiveCount int
	// VisibilityTimeout is the queue's (default 30s).
	VisibilityTimeout time.Duration
	// Enveloped subscribes an SQS queue to SNS without raw delivery, so it
	// receives the SNS JSON envelope (which crossbus unwraps).
	Enveloped bool
	// MessageGroupID is the group of events an EventBridge rule sends to a
	// FIFO queue (EventBridge sets one static group per target; default
	// "crossbus").
	MessageGroupID string
}

// Provisioned lists what Provision created or found.
type Provisioned struct {
	QueueURL, QueueARN string
	DeadLetterQueueURL string
	RuleARN            string // EventBridge
	SubscriptionARN    string // SNS
	FilterPolicy       string // SNS: the subscription's filter policy, "" for none
}

// DetailPattern turns a crossbus filter pattern, which matches the
// CloudEvent's JSON form, into an EventBridge event pattern for events
// crossbus published to EventBridge (whose detail is that JSON form).
func DetailPattern(filter string) (string, error) {
	f, err := crossbus.CompilePattern(filter)
	if err != nil {
		return "", fmt.Errorf("%w: filter pattern: %w", driver.ErrInvalidOption, err)
	}
	b, _, err := RulePattern(f)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// RulePattern translates a route filter into an EventBridge rule pattern for
// events crossbus published to EventBridge (source -> source, type ->
// detail-type, the CloudEvent as detail). exact reports whether the rule
// selects exactly the filter's events; otherwise the filter must still run
// locally (the portable layer always runs it). A filter that is not an
// event pattern cannot be translated: the error wraps
// driver.ErrNotSupported.
func RulePattern(f crossbus.Filter) (pattern []byte, exact bool, err error) {
	p, err := eventpattern.FromFilter(f)
	if err != nil {
		return nil, false, fmt.Errorf("%w: EventBridge rule pattern: %w", driver.ErrNotSupported, err)
	}
	return eventpattern.ToEventBridge(p)
}

// SNSFilterPolicy translates a route filter into an SNS subscription filter
// policy with the MessageBody scope, for events published to SNS in
// Structured mode (the body is the event's JSON form). The policy is a
// superset of the filter: it keeps only the conditions on id, source,
// type, subject, datacontenttype and dataschema that SNS evaluates the
// same way (exact strings, prefixes, exists, anything-but strings or one
// prefix), at most 5 keys. A filter with none of them, or that is not an
// event pattern, cannot be translated: the error wraps
// driver.ErrNotSupported.
func SNSFilterPolicy(f crossbus.Filter) (policy string, err error) {
	p, err := eventpattern.FromFilter(f)
	if err == nil {
		var b []byte
		if b, _, err = eventpattern.ToSNSFilterPolicy(p); err == nil {
			return string(b), nil
		}
	}
	return "", fmt.Errorf("%w: SNS filter policy: %w", driver.ErrNotSupported, err)
}

// matchAll is an event pattern every EventBridge event matches.
const matchAll = `{"version":["0"]}`

// ProvisionTopic creates a topic for the service the provider publishes to:
// an event bus, an SNS topic, or (SQS) a queue. It returns the bus name,
// topic ARN or queue URL. Existing topics are left as they are.
func (p *Provider) ProvisionTopic(ctx context.Context, name string, fifo bool) (string, error) {
	switch p.opts.Publish {
	case EventBridge:
		_, err := p.eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: &name})
		if err != nil && errorCode(err) != "ResourceAlreadyExistsException" {
			return "", fmt.Errorf("aws: create event bus %q: %w", name, err)
		}
		return name, nil
	case SNS:
		in := &sns.CreateTopicInput{Name: &name}
		if fifo {
			in.Name = awssdk.String(strings.TrimSuffix(name, ".fifo") + ".fifo")
			in.Attributes = map[string]string{"FifoTopic": "true"}
		}
		out, err := p.sns.CreateTopic(ctx, in)
		if err != nil {
			return "", fmt.Errorf("aws: create SNS topic %q: %w", name, err)
		}
		p.topicARNs.Store(name, *out.TopicArn)
		return *out.TopicArn, nil
	default:
		u, _, err := p.createQueue(ctx, name, fifo, nil)
		return u, err
	}
}

func (p *Provider) createQueue(ctx context.Context, name string, fifo bool, attrs map[string]string) (url, arn string, err error) {
	if fifo {
		name = strings.TrimSuffix(name, ".fifo") + ".fifo"
		if attrs == nil {
			attrs = map[string]string{}
		}
		attrs["FifoQueue"] = "true"
	}
	out, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("aws: create queue %q: %w", name, err)
	}
	a, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", "", fmt.Errorf("aws: read ARN of queue %q: %w", name, err)
	}
	p.queueURLs.Store(name, *out.QueueUrl)
	p.queueURLs.Store(strings.TrimSuffix(name, ".fifo"), *out.QueueUrl)
	return *out.QueueUrl, a.Attributes["QueueArn"], nil
}

// Provision creates the queue of a route (and its dead-letter queue) and
// wires it to the topic: for EventBridge a rule with the route's pattern, an
// SQS target and a queue policy letting the rule send; for SNS a raw (or
// enveloped) subscription and a queue policy letting the topic send. It is
// safe to run again: existing entities are reused.
func (p *Provider) Provision(ctx context.Context, r Route) (Provisioned, error) {
	var out Provisioned
	attrs := map[string]string{}
	if r.VisibilityTimeout > 0 {
		attrs["VisibilityTimeout"] = strconv.Itoa(int(visibilitySeconds(r.VisibilityTimeout)))
	}
	if r.MaxReceiveCount > 0 {
		dlqURL, dlqARN, err := p.createQueue(ctx, r.Subscription+"-dlq", r.FIFO, nil)
		if err != nil {
			return out, err
		}
		out.DeadLetterQueueURL = dlqURL
		rp, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": strconv.Itoa(r.MaxReceiveCount)})
		attrs["RedrivePolicy"] = string(rp)
	}
	var err error
	if out.QueueURL, out.QueueARN, err = p.createQueue(ctx, r.Subscription, r.FIFO, attrs); err != nil {
		return out, err
	}
	switch p.opts.Publish {
	case EventBridge:
		out.RuleARN, err = p.provisionRule(ctx, r, out.QueueARN)
		if err == nil {
			err = p.allowSend(ctx, out.QueueURL, out.QueueARN, "events.amazonaws.com", out.RuleARN)
		}
	case SNS:
		var topicARN string
		if topicARN, err = p.snsTopicARN(ctx, r.Topic); err != nil {
			return out, err
		}
		if err = p.allowSend(ctx, out.QueueURL, out.QueueARN, "sns.amazonaws.com", topicARN); err != nil {
			return out, err
		}
		attrs := map[string]string{"RawMessageDelivery": strconv.FormatBool(!r.Enveloped)}
		if r.Filter != nil && p.opts.Mode == Structured {
			if policy, perr := SNSFilterPolicy(r.Filter); perr == nil {
				attrs["FilterPolicy"], attrs["FilterPolicyScope"] = policy, "MessageBody"
				out.FilterPolicy = policy
			}
		}
		var sub *sns.SubscribeOutput
		sub, err = p.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &topicARN, Protocol: awssdk.String("sqs"), Endpoint: &out.QueueARN,
			ReturnSubscriptionArn: true, Attributes: attrs})
		if err != nil {
			return out, mapErr(fmt.Errorf("aws: subscribe queue %s to %s: %w", out.QueueARN, topicARN, err), driver.ErrTopicNotFound)
		}
		out.SubscriptionARN = awssdk.ToString(sub.SubscriptionArn)
	}
	return out, err
}

func (p *Provider) provisionRule(ctx context.Context, r Route, queueARN string) (string, error) {
	pat := r.Pattern
	if pat == "" && r.Filter != nil {
		b, _, err := RulePattern(r.Filter)
		if err != nil {
			return "", fmt.Errorf("aws: rule for route %q: %w", r.Subscription, err)
		}
		pat = string(b)
	}
	if pat == "" {
		pat = matchAll
	}
	bus := r.Topic
	rule, err := p.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: &r.Subscription, EventBusName: &bus, EventPattern: &pat,
		Description: awssdk.String("crossbus route " + r.Subscription)})
	if err != nil {
		return "", mapErr(fmt.Errorf("aws: put rule %q on bus %q: %w", r.Subscription, bus, err), driver.ErrTopicNotFound)
	}
	target := ebtypes.Target{Id: awssdk.String("crossbus-sqs"), Arn: &queueARN}
	if r.FIFO {
		g := r.MessageGroupID
		if g == "" {
			g = "crossbus"
		}
		target.SqsParameters = &ebtypes.SqsParameters{MessageGroupId: &g}
	}
	out, err := p.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: &r.Subscription, EventBusName: &bus, Targets: []ebtypes.Target{target}})
	if err != nil {
		return "", fmt.Errorf("aws: put target of rule %q: %w", r.Subscription, err)
	}
	if out.FailedEntryCount > 0 {
		f := out.FailedEntries[0]
		return "", fmt.Errorf("aws: put target of rule %q: %s: %s", r.Subscription, awssdk.ToString(f.ErrorCode), awssdk.ToString(f.ErrorMessage))
	}
	return *rule.RuleArn, nil
}

// allowSend adds to the queue's policy a statement letting service send
// messages on behalf of sourceARN (a rule or topic), keeping the others.
func (p *Provider) allowSend(ctx context.Context, queueURL, queueARN, service, sourceARN string) error {
	a, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
	if err != nil {
		return fmt.Errorf("aws: read policy of %s: %w", queueURL, err)
	}
	policy := map[string]any{"Version": "2012-10-17"}
	var stmts []any
	if raw := a.Attributes["Policy"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &policy); err != nil {
			return fmt.Errorf("aws: policy of %s is not JSON: %w", queueURL, err)
		}
		switch s := policy["Statement"].(type) {
		case []any:
			stmts = s
		case map[string]any:
			stmts = []any{s}
		}
	}
	sum := sha256.Sum256([]byte(service + sourceARN))
	sid := "crossbus" + hex.EncodeToString(sum[:8])
	for _, s := range stmts {
		if m, ok := s.(map[string]any); ok && m["Sid"] == sid {
			return nil
		}
	}
	stmts = append(stmts, map[string]any{"Sid": sid, "Effect": "Allow", "Principal": map[string]any{"Service": service},
		"Action": "sqs:SendMessage", "Resource": queueARN, "Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": sourceARN}}})
	policy["Statement"] = stmts
	b, _ := json.Marshal(policy)
	_, err = p.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &queueURL, Attributes: map[string]string{"Policy": string(b)}})
	if err != nil {
		return fmt.Errorf("aws: set policy of %s: %w", queueURL, err)
	}
	return nil
}
