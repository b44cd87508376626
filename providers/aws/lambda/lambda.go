// Package lambda serves crossbus routes from AWS Lambda: SQS event source
// mappings (with partial batch responses), EventBridge rule targets and SNS
// subscriptions. Each pushed event runs through the same pipeline as a pulled
// one (filters, middleware, idempotency, retry policy, dead-lettering) by way
// of a *crossbus.Endpoint, and its outcome becomes what Lambda expects.
//
//	r, _ := crossbus.NewRouter(bus)
//	r.Handle("orders", "billing", bill, crossbus.WithDeadLetterTopic("orders-dlq"))
//	ep, _ := r.Endpoint("orders", "billing")
//	handler, err := cblambda.SQS(ep, cblambda.SQSOptions{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	lambda.Start(handler)
//
// Messages that claim to be CloudEvents but are not valid ones (see
// aws.DecodeMessage) are handed to the endpoint as undecodable deliveries
// (driver.Undecodable): the portable layer dead-letters them to the
// route's dead-letter topic without running the handler, and the record,
// settled, is not reported failed.
//
// The package is separate from providers/aws so that services not running on
// Lambda do not link github.com/aws/aws-lambda-go.
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	awsprov "github.com/crossbus/crossbus/providers/aws"
)

// SQSOptions configure the SQS handler. The zero value is valid.
type SQSOptions struct {
	// Client, when set, applies the retry policy's delay to failed
	// records with ChangeMessageVisibilityBatch before reporting them
	// (the function's role then needs sqs:ChangeMessageVisibility and
	// sqs:GetQueueUrl). Without it a failed record comes back after the
	// queue's visibility timeout.
	Client *sqs.Client
}

// errNilEndpoint refuses a handler built without an endpoint, which could
// only fail at the first invocation.
func errNilEndpoint(name string) error {
	return fmt.Errorf("%w: crossbus/lambda: %s(nil endpoint): make one with Router.Endpoint or Bus.NewEndpoint", driver.ErrInvalidOption, name)
}

// undecodable is the pushed delivery of a message that claims to be a
// CloudEvent and is not one (driver.Undecodable).
type undecodable struct {
	*driver.PushDelivery
	err error
}

func (u undecodable) DecodeError() error { return u.err }

// pushed wraps a decoded record for the endpoint: a plain push delivery, or
// an undecodable one when decodeErr is set.
func pushed(ev *crossbus.Event, attempt int, decodeErr error) (*driver.PushDelivery, driver.Delivery) {
	d := driver.NewPushDelivery(ev, attempt)
	if decodeErr != nil {
		return d, undecodable{PushDelivery: d, err: decodeErr}
	}
	return d, d
}

// SQS returns a handler for an SQS event source mapping. The mapping must
// have ReportBatchItemFailures in its FunctionResponseTypes: the handler
// answers with the records to retry in batchItemFailures and never fails the
// whole batch.
//
// Each record is decoded by the rules of aws.DecodeMessage (structured or
// binary CloudEvents, SNS and EventBridge envelopes, native messages), with
// ApproximateReceiveCount as the attempt; a record that claims to be a
// CloudEvent and is not one is undecodable (see the package documentation). A record is reported failed when
// the pipeline nacks it (a retryable error before the last attempt) or does
// not settle it (the invocation's context ended); it is not reported when it
// was handled, filtered out, or dead-lettered to the route's dead-letter
// topic. Records of a standard queue run as the endpoint's route says
// (concurrently up to WithConcurrency, in key order with WithOrdering).
// Records of a FIFO queue run one at a time in order; once a record of a
// message group fails, the later records of that group are reported failed
// without running, so none overtakes it.
//
// It fails only when ep is nil.
func SQS(ep *crossbus.Endpoint, o SQSOptions) (func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), error) {
	if ep == nil {
		return nil, errNilEndpoint("SQS")
	}
	urls := &sync.Map{}
	return func(ctx context.Context, batch events.SQSEvent) (events.SQSEventResponse, error) {
		ds := make([]*driver.PushDelivery, len(batch.Records))
		all := make([]driver.Delivery, len(batch.Records))
		for i := range batch.Records {
			ev, err := DecodeSQSRecord(batch.Records[i])
			ds[i], all[i] = pushed(ev, receiveCount(batch.Records[i]), err)
		}
		skipped := map[int]bool{}
		if len(batch.Records) > 0 && strings.HasSuffix(batch.Records[0].EventSourceARN, ".fifo") {
			blocked := map[string]bool{}
			for i, d := range ds {
				g := batch.Records[i].Attributes["MessageGroupId"]
				if blocked[g] {
					skipped[i] = true
					continue
				}
				ep.Deliver(ctx, all[i])
				if out, _ := d.Outcome(); out == driver.OutcomeNacked || out == driver.OutcomeUnsettled {
					blocked[g] = true
				}
			}
		} else {
			ep.DeliverBatch(ctx, all)
		}
		var resp events.SQSEventResponse
		var delayed []delayedRecord
		for i, d := range ds {
			out, delay := d.Outcome()
			if !skipped[i] && (out == driver.OutcomeAcked) {
				continue
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: batch.Records[i].MessageId})
			if out == driver.OutcomeNacked && delay > 0 {
				delayed = append(delayed, delayedRecord{rec: &batch.Records[i], delay: delay})
			}
		}
		if o.Client != nil && len(delayed) > 0 {
			delayRecords(ctx, o.Client, urls, delayed)
		}
		return resp, nil
	}, nil
}

type delayedRecord struct {
	rec   *events.SQSMessage
	delay time.Duration
}

// delayRecords sets the visibility timeout of nacked records to their
// retry delay. Failures are not fatal: the record then comes back after the
// queue's visibility timeout.
func delayRecords(ctx context.Context, c *sqs.Client, urls *sync.Map, recs []delayedRecord) {
	byQueue := map[string][]delayedRecord{}
	for _, r := range recs {
		byQueue[r.rec.EventSourceARN] = append(byQueue[r.rec.EventSourceARN], r)
	}
	for arn, rs := range byQueue {
		url, err := queueURL(ctx, c, urls, arn)
		if err != nil {
			continue
		}
		for start := 0; start < len(rs); start += 10 {
			var entries []sqstypes.ChangeMessageVisibilityBatchRequestEntry
			for j, r := range rs[start:min(start+10, len(rs))] {
				secs := int32(math.Ceil(min(r.delay, awsprov.MaxVisibility).Seconds()))
				entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: awssdk.String(strconv.Itoa(j)),
					ReceiptHandle: awssdk.String(r.rec.ReceiptHandle), VisibilityTimeout: secs})
			}
			_, _ = c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: entries})
		}
	}
}

func queueURL(ctx context.Context, c *sqs.Client, cache *sync.Map, arn string) (string, error) {
	if u, ok := cache.Load(arn); ok {
		return u.(string), nil
	}
	p := strings.Split(arn, ":")
	if len(p) != 6 {
		return "", fmt.Errorf("crossbus/lambda: %q is not an SQS queue ARN", arn)
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &p[5], QueueOwnerAWSAccountId: &p[4]})
	if err != nil {
		return "", err
	}
	cache.Store(arn, *out.QueueUrl)
	return *out.QueueUrl, nil
}

func receiveCount(r events.SQSMessage) int {
	n, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
	return max(n, 1)
}

// DecodeSQSRecord turns a record of a Lambda SQS event into an event, by
// the rules of aws.DecodeMessage. It fails only for a record that claims to
// be a CloudEvent and is not a valid one (aws.ErrMalformedCloudEvent); the
// event is then the placeholder of aws.UndecodableEvent, never nil.
func DecodeSQSRecord(r events.SQSMessage) (*crossbus.Event, error) {
	m := sqsMessage(r)
	ev, err := awsprov.DecodeMessage(m)
	if err != nil {
		return awsprov.UndecodableEvent(m), err
	}
	return ev, nil
}

func sqsMessage(r events.SQSMessage) awsprov.Message {
	m := awsprov.Message{ID: r.MessageId, Body: r.Body, SourceARN: r.EventSourceARN}
	if ms, err := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64); err == nil {
		m.SentTimestamp = time.UnixMilli(ms).UTC()
	}
	for k, a := range r.MessageAttributes {
		if m.Attributes == nil {
			m.Attributes = make(map[string]awsprov.Attribute, len(r.MessageAttributes))
		}
		m.Attributes[k] = awsprov.Attribute{DataType: a.DataType, StringValue: awssdk.ToString(a.StringValue), BinaryValue: a.BinaryValue}
	}
	return m
}

// ErrRetry is returned (wrapped) by the EventBridge and SNS handlers when the
// pipeline nacked the event, so that Lambda retries the invocation.
var ErrRetry = errors.New("crossbus/lambda: event not handled; retry the invocation")

// EventBridge returns a handler for an EventBridge rule's Lambda target.
// The event is decoded with aws.DecodeEventBridge: an event crossbus
// published is returned as it was; an AWS service event becomes a
// CloudEvent by that function's rule. Lambda invokes targets
// asynchronously and does not pass a retry count, so the attempt is always
// 1: a retryable failure returns an error wrapping ErrRetry and Lambda's
// asynchronous retries (and its on-failure destination) take over; a
// permanent failure goes to the route's dead-letter topic and the invocation
// succeeds. An event whose detail claims to be a CloudEvent and is not one
// is undecodable (see the package documentation); a payload that is not an
// EventBridge event at all fails with an error wrapping
// driver.ErrInvalidData.
//
// It fails only when ep is nil.
func EventBridge(ep *crossbus.Endpoint) (func(context.Context, json.RawMessage) error, error) {
	if ep == nil {
		return nil, errNilEndpoint("EventBridge")
	}
	return func(ctx context.Context, payload json.RawMessage) error {
		ev, err := awsprov.DecodeEventBridge(payload)
		switch {
		case errors.Is(err, awsprov.ErrMalformedCloudEvent):
			return deliverOne(ctx, ep, undecodableEventBridge(payload), err)
		case err != nil:
			return fmt.Errorf("%w: %w", driver.ErrInvalidData, err)
		}
		return deliverOne(ctx, ep, ev, nil)
	}, nil
}

// undecodableEventBridge is the placeholder event of an EventBridge event
// whose detail is a malformed CloudEvent: its id and source are the
// envelope's, its data the whole envelope.
func undecodableEventBridge(payload []byte) *crossbus.Event {
	var env struct {
		ID     string `json:"id"`
		Source string `json:"source"`
	}
	_ = json.Unmarshal(payload, &env)
	if env.Source == "" {
		env.Source = "aws.events"
	}
	ev := driver.NewUndecodableEvent(strings.TrimSpace(env.ID), env.Source, payload, nil)
	if crossbus.Validate(&ev) != nil { // a source that is not a URI reference
		ev.SetSource("aws.events")
		ev.FieldErrors = nil
	}
	return &ev
}

// SNS returns a handler for an SNS subscription's Lambda endpoint. Each
// record is decoded with aws.DecodeNotification (a message that claims to
// be a CloudEvent and is not one is undecodable, see the package
// documentation). As with EventBridge, the attempt is always 1 and a
// retryable failure returns an error wrapping ErrRetry, so that Lambda
// retries the asynchronous invocation.
//
// It fails only when ep is nil.
func SNS(ep *crossbus.Endpoint) (func(context.Context, events.SNSEvent) error, error) {
	if ep == nil {
		return nil, errNilEndpoint("SNS")
	}
	return func(ctx context.Context, e events.SNSEvent) error {
		var errs []error
		for _, r := range e.Records {
			ev, decodeErr := DecodeSNSRecord(r)
			if err := deliverOne(ctx, ep, ev, decodeErr); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}, nil
}

func deliverOne(ctx context.Context, ep *crossbus.Endpoint, ev *crossbus.Event, decodeErr error) error {
	d, delivery := pushed(ev, 1, decodeErr)
	ep.Deliver(ctx, delivery)
	switch out, delay := d.Outcome(); out {
	case driver.OutcomeAcked:
		return nil
	default:
		return fmt.Errorf("%w: event %q %v (retry in %v)", ErrRetry, ev.ID(), out, delay)
	}
}

// DecodeSNSRecord turns a record of a Lambda SNS event into an event, by the
// rules of aws.DecodeNotification. It fails only for a message that claims
// to be a CloudEvent and is not a valid one (aws.ErrMalformedCloudEvent);
// the event is then the placeholder of aws.UndecodableNotification, never
// nil.
func DecodeSNSRecord(r events.SNSEventRecord) (*crossbus.Event, error) {
	n := awsprov.Notification{MessageID: r.SNS.MessageID, TopicARN: r.SNS.TopicArn, Subject: r.SNS.Subject,
		Message: r.SNS.Message, Timestamp: r.SNS.Timestamp}
	for k, v := range r.SNS.MessageAttributes {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		typ, _ := m["Type"].(string)
		val, _ := m["Value"].(string)
		if n.Attributes == nil {
			n.Attributes = map[string]awsprov.Attribute{}
		}
		n.Attributes[k] = awsprov.SNSAttribute(typ, val)
	}
	ev, err := awsprov.DecodeNotification(n)
	if err != nil {
		return awsprov.UndecodableNotification(n), err
	}
	return ev, nil
}
