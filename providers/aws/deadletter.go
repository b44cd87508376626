package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus/driver"
)

// queueInfo is what the receiver needs to know about a queue.
type queueInfo struct {
	url, arn    string
	fifo        bool
	visibility  time.Duration
	dlqARN      string // from the RedrivePolicy ("" when none)
	dlqURL      string
	maxReceives int
}

// queueInfo reads a queue's attributes and resolves its dead-letter queue.
func (p *Provider) queueInfo(ctx context.Context, url string) (queueInfo, error) {
	out, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNameVisibilityTimeout,
			sqstypes.QueueAttributeNameRedrivePolicy, sqstypes.QueueAttributeNameFifoQueue}})
	if err != nil {
		return queueInfo{}, fmt.Errorf("aws: GetQueueAttributes of %s: %w", url, ctxErr(ctx, err))
	}
	a := out.Attributes
	q := queueInfo{url: url, arn: a["QueueArn"], fifo: a["FifoQueue"] == "true" || isFIFO(url)}
	if s, err := strconv.Atoi(a["VisibilityTimeout"]); err == nil {
		q.visibility = time.Duration(s) * time.Second
	}
	if rp := a["RedrivePolicy"]; rp != "" {
		var pol struct {
			DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
			MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(rp), &pol); err != nil {
			return queueInfo{}, fmt.Errorf("aws: RedrivePolicy of %s is not JSON: %w", url, err)
		}
		q.dlqARN = pol.DeadLetterTargetArn
		q.maxReceives, _ = strconv.Atoi(strings.Trim(string(pol.MaxReceiveCount), `"`))
		if q.dlqURL, err = p.queueURLByARN(ctx, q.dlqARN); err != nil {
			p.opts.Logger.Warn("aws: the queue's dead-letter queue cannot be found; using the route's dead-letter topic",
				"queue", url, "deadLetterTargetArn", q.dlqARN, "error", err)
		}
	}
	return q, nil
}

// queueURLByARN finds the URL of the queue arn:aws:sqs:REGION:ACCOUNT:NAME.
func (p *Provider) queueURLByARN(ctx context.Context, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return "", fmt.Errorf("aws: %q is not an SQS queue ARN", arn)
	}
	if u, ok := p.queueURLs.Load(arn); ok {
		return u.(string), nil
	}
	out, err := p.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: awssdk.String(parts[5]), QueueOwnerAWSAccountId: awssdk.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("aws: GetQueueUrl of %s: %w", arn, ctxErr(ctx, err))
	}
	p.queueURLs.Store(arn, *out.QueueUrl)
	return *out.QueueUrl, nil
}

// DeadLetter moves the message to the queue's dead-letter queue (its
// RedrivePolicy target) with the dead-letter extensions, then deletes it.
// SQS only dead-letters by receive count, so this sends a copy and deletes
// the original; if the delete fails the copy stays and the original is
// redelivered. Queues without a RedrivePolicy return ErrNotSupported, and the
// route's dead-letter topic is used instead.
func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	r := d.r
	if r.q.dlqURL == "" {
		return fmt.Errorf("aws: queue %s has no dead-letter queue: %w", r.q.url, driver.ErrNotSupported)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled {
		return errSettled
	}
	dl := driver.DeadLetterEvent(d.ev, info)
	m, err := encodeMessage(&dl, r.p.opts.Mode)
	if err != nil {
		return err
	}
	in := &sqs.SendMessageInput{QueueUrl: &r.q.dlqURL, MessageBody: awssdk.String(m.body), MessageAttributes: sqsAttrs(m.attrs)}
	if isFIFO(r.q.dlqURL) {
		g := d.group
		if g == "" {
			g = groupID(d.ev)
		}
		in.MessageGroupId, in.MessageDeduplicationId = awssdk.String(g), awssdk.String(d.msgID)
	}
	if _, err := r.p.sqs.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("aws: send dead letter of %s to %s: %w", d.msgID, r.q.dlqURL, ctxErr(ctx, err))
	}
	if _, err := r.p.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &r.q.url, ReceiptHandle: &d.handle}); err != nil {
		return fmt.Errorf("aws: dead letter of %s sent, but deleting the original failed (it will be redelivered): %w", d.msgID, ctxErr(ctx, err))
	}
	d.settled = true
	return nil
}

// SubscribeDeadLetters implements driver.DeadLetterReader: it opens a
// receiver on the dead-letter queue of the subscription's queue.
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	url, err := p.queueURL(ctx, subscription, driver.ErrSubscriptionNotFound)
	if err != nil {
		return nil, err
	}
	q, err := p.queueInfo(ctx, url)
	if err != nil {
		return nil, mapErr(err, driver.ErrSubscriptionNotFound)
	}
	if q.dlqURL == "" {
		return nil, fmt.Errorf("aws: queue %s has no dead-letter queue: %w", url, driver.ErrNotSupported)
	}
	dlq, err := p.queueInfo(ctx, q.dlqURL)
	if err != nil {
		return nil, err
	}
	r, err := p.newReceiver(subscription+" (dead letters)", dlq, dlq.visibility)
	if err != nil {
		return nil, err
	}
	return r, nil
}
