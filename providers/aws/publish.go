package aws

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// batchCall sends one batch (indexes into the caller's events) and reports
// the entries the service refused, or an error for the whole call.
type batchCall func(ctx context.Context, batch []int) (map[int]*EntryError, error)

// withEntryRetries runs call for batch and again, with backoff, for the
// entries that failed with a retryable code, up to PublishAttempts. It
// returns the events that failed for good.
func (p *Provider) withEntryRetries(ctx context.Context, batch []int, call batchCall) map[int]error {
	failed := map[int]error{}
	pending := batch
	for attempt := 1; len(pending) > 0; attempt++ {
		res, err := call(ctx, pending)
		if err != nil {
			for _, i := range pending {
				failed[i] = err
			}
			return failed
		}
		var retry []int
		for _, i := range pending {
			ee := res[i]
			switch {
			case ee == nil:
			case ee.Retryable && attempt < p.opts.PublishAttempts:
				retry = append(retry, i)
			default:
				failed[i] = ee
			}
		}
		pending = retry
		if len(pending) == 0 {
			break
		}
		t := time.NewTimer(backoff(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for _, i := range pending {
				failed[i] = fmt.Errorf("aws: retrying refused entries: %w", ctx.Err())
			}
			return failed
		}
	}
	return failed
}

// backoff is the wait before retry attempt+1: 50ms doubling to 2s, with
// full jitter on the upper half.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt-1, 6)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// chunks splits idx into batches of at most maxCount entries and maxBytes
// bytes as size counts them.
func chunks(idx []int, size func(int) int, maxCount, maxBytes int) [][]int {
	var out [][]int
	var cur []int
	bytes := 0
	for _, i := range idx {
		n := size(i)
		if len(cur) > 0 && (len(cur) == maxCount || bytes+n > maxBytes) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, i)
		bytes += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// encodeAll encodes events for SQS or SNS, refusing those over limit.
func (p *Provider) encodeAll(events []*driver.Event, limit int, failed map[int]error) ([]wireMessage, []int) {
	msgs := make([]wireMessage, len(events))
	ok := make([]int, 0, len(events))
	for i, e := range events {
		m, err := encodeMessage(e, p.opts.Mode)
		if err != nil {
			failed[i] = err
			continue
		}
		if n := m.size(); n > limit {
			failed[i] = &crossbus.SizeError{EventID: e.ID(), Size: n, Limit: limit}
			continue
		}
		msgs[i] = m
		ok = append(ok, i)
	}
	return msgs, ok
}

func (p *Provider) limit(service int) int {
	if p.opts.MaxEventBytes > 0 && p.opts.MaxEventBytes < service {
		return p.opts.MaxEventBytes
	}
	return service
}

// structuredSQSAttrs are the attributes of every structured message, shared
// (the SDK only reads them).
var structuredSQSAttrs = map[string]sqstypes.MessageAttributeValue{
	AttrContentType: {DataType: awssdk.String("String"), StringValue: awssdk.String(StructuredContentType)}}

func sqsAttrs(m map[string]string) map[string]sqstypes.MessageAttributeValue {
	if len(m) == 1 && m[AttrContentType] == StructuredContentType {
		return structuredSQSAttrs
	}
	out := make(map[string]sqstypes.MessageAttributeValue, len(m))
	for k, v := range m {
		out[k] = sqstypes.MessageAttributeValue{DataType: awssdk.String("String"), StringValue: awssdk.String(v)}
	}
	return out
}

func snsAttrs(m map[string]string) map[string]snstypes.MessageAttributeValue {
	out := make(map[string]snstypes.MessageAttributeValue, len(m))
	for k, v := range m {
		out[k] = snstypes.MessageAttributeValue{DataType: awssdk.String("String"), StringValue: awssdk.String(v)}
	}
	return out
}

// publishSQS sends events to a queue with SendMessageBatch. On FIFO queues
// MessageGroupId is the partition key and MessageDeduplicationId derives
// from source and id.
func (p *Provider) publishSQS(ctx context.Context, target string, events []*driver.Event) error {
	url, err := p.queueURL(ctx, target, driver.ErrTopicNotFound)
	if err != nil {
		return err
	}
	fifo := isFIFO(url)
	limit := p.limit(MaxSQSMessageBytes)
	failed := map[int]error{}
	msgs, ok := p.encodeAll(events, limit, failed)
	for _, b := range chunks(ok, func(i int) int { return msgs[i].size() }, maxBatch, MaxSQSMessageBytes) {
		for i, err := range p.withEntryRetries(ctx, b, func(ctx context.Context, batch []int) (map[int]*EntryError, error) {
			entries := make([]sqstypes.SendMessageBatchRequestEntry, len(batch))
			for j, i := range batch {
				entries[j] = sqstypes.SendMessageBatchRequestEntry{Id: awssdk.String(strconv.Itoa(j)),
					MessageBody: awssdk.String(msgs[i].body), MessageAttributes: sqsAttrs(msgs[i].attrs)}
				if fifo {
					entries[j].MessageGroupId = awssdk.String(groupID(events[i]))
					entries[j].MessageDeduplicationId = awssdk.String(dedupID(events[i]))
				}
			}
			out, err := p.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
			if err != nil {
				return nil, mapErr(fmt.Errorf("aws: SendMessageBatch to %s: %w", url, ctxErr(ctx, err)), driver.ErrTopicNotFound)
			}
			res := map[int]*EntryError{}
			for _, f := range out.Failed {
				j, _ := strconv.Atoi(awssdk.ToString(f.Id))
				if j >= 0 && j < len(batch) {
					res[batch[j]] = &EntryError{Op: "SendMessageBatch", Code: awssdk.ToString(f.Code), Message: awssdk.ToString(f.Message), Retryable: !f.SenderFault}
				}
			}
			return res, nil
		}) {
			failed[i] = err
		}
	}
	return publishError(events, failed)
}

// snsTopicARN resolves a topic name (or ARN) to its ARN: relative to
// Options.Target when that is an SNS topic ARN, else by listing topics.
func (p *Provider) snsTopicARN(ctx context.Context, name string) (string, error) {
	if strings.HasPrefix(name, "arn:") {
		return name, nil
	}
	if a, ok := p.topicARNs.Load(name); ok {
		return a.(string), nil
	}
	if t := p.opts.Target; strings.HasPrefix(t, "arn:") {
		if i := strings.LastIndexByte(t, ':'); i > 0 {
			arn := t[:i+1] + name
			p.topicARNs.Store(name, arn)
			return arn, nil
		}
	}
	pages := sns.NewListTopicsPaginator(p.sns, &sns.ListTopicsInput{})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("aws: find SNS topic %q: %w", name, ctxErr(ctx, err))
		}
		for _, t := range out.Topics {
			arn := awssdk.ToString(t.TopicArn)
			if strings.HasSuffix(arn, ":"+name) || strings.HasSuffix(arn, ":"+name+".fifo") {
				p.topicARNs.Store(name, arn)
				return arn, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no SNS topic named %q", driver.ErrTopicNotFound, name)
}

// publishSNS sends events to a topic: Publish for one event, PublishBatch
// for more. On FIFO topics MessageGroupId is the partition key and
// MessageDeduplicationId derives from source and id.
func (p *Provider) publishSNS(ctx context.Context, target string, events []*driver.Event) error {
	arn, err := p.snsTopicARN(ctx, target)
	if err != nil {
		return err
	}
	fifo := isFIFO(arn)
	limit := p.limit(MaxSNSMessageBytes)
	failed := map[int]error{}
	msgs, ok := p.encodeAll(events, limit, failed)
	wrap := func(op string, err error) error {
		return mapErr(fmt.Errorf("aws: SNS %s to %s: %w", op, arn, ctxErr(ctx, err)), driver.ErrTopicNotFound)
	}
	for _, b := range chunks(ok, func(i int) int { return msgs[i].size() }, maxBatch, limit) {
		for i, err := range p.withEntryRetries(ctx, b, func(ctx context.Context, batch []int) (map[int]*EntryError, error) {
			if len(batch) == 1 {
				i := batch[0]
				in := &sns.PublishInput{TopicArn: &arn, Message: awssdk.String(msgs[i].body), MessageAttributes: snsAttrs(msgs[i].attrs)}
				if fifo {
					in.MessageGroupId, in.MessageDeduplicationId = awssdk.String(groupID(events[i])), awssdk.String(dedupID(events[i]))
				}
				if _, err := p.sns.Publish(ctx, in); err != nil {
					return nil, wrap("Publish", err)
				}
				return nil, nil
			}
			entries := make([]snstypes.PublishBatchRequestEntry, len(batch))
			for j, i := range batch {
				entries[j] = snstypes.PublishBatchRequestEntry{Id: awssdk.String(strconv.Itoa(j)), Message: awssdk.String(msgs[i].body),
					MessageAttributes: snsAttrs(msgs[i].attrs)}
				if fifo {
					entries[j].MessageGroupId, entries[j].MessageDeduplicationId = awssdk.String(groupID(events[i])), awssdk.String(dedupID(events[i]))
				}
			}
			out, err := p.sns.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: &arn, PublishBatchRequestEntries: entries})
			if err != nil {
				return nil, wrap("PublishBatch", err)
			}
			res := map[int]*EntryError{}
			for _, f := range out.Failed {
				j, _ := strconv.Atoi(awssdk.ToString(f.Id))
				if j >= 0 && j < len(batch) {
					res[batch[j]] = &EntryError{Op: "PublishBatch", Code: awssdk.ToString(f.Code), Message: awssdk.ToString(f.Message), Retryable: !f.SenderFault}
				}
			}
			return res, nil
		}) {
			failed[i] = err
		}
	}
	return publishError(events, failed)
}
