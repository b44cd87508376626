package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

const (
	sendTimeout      = 30 * time.Second
	maxInflightCalls = 8
)

// systemAttrs are the SQS system attributes the receiver asks for.
var systemAttrs = []sqstypes.MessageSystemAttributeName{
	sqstypes.MessageSystemAttributeNameApproximateReceiveCount,
	sqstypes.MessageSystemAttributeNameSentTimestamp,
	sqstypes.MessageSystemAttributeNameMessageGroupId,
}

// receiver consumes one SQS queue. Receive may be called from several
// goroutines at once. Its long polls run on the provider's lifetime, not on
// a Receive's context (see Receive).
type receiver struct {
	p       *Provider
	q       queueInfo
	name    string // the subscription
	vis     int32  // visibility timeout in seconds
	caps    driver.Capabilities
	deletes *batcher
	changes *batcher
	polls   *providerkit.Polls[*delivery]

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// pollSlack is how much longer than its WaitTime a ReceiveMessage call may
// take before it is given up.
const pollSlack = 30 * time.Second

// Subscribe opens a receiver on the SQS queue named by spec.Name (a queue
// name, a name without its ".fifo" suffix, a URL, or a name mapped by
// Options.Queues). The topic does not matter here: what reaches the queue is
// decided by its SNS subscriptions or EventBridge rules (see Provision).
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if p.receivers.Closed() {
		return nil, fmt.Errorf("aws: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	url, err := p.queueURL(ctx, spec.Name, driver.ErrSubscriptionNotFound)
	if err != nil {
		return nil, err
	}
	q, err := p.queueInfo(ctx, url)
	if err != nil {
		return nil, mapErr(err, driver.ErrSubscriptionNotFound)
	}
	if q.dlqARN != "" && spec.MaxAttempts > 0 && q.maxReceives < spec.MaxAttempts {
		p.opts.Logger.Warn("aws: the queue's redrive policy moves messages to its dead-letter queue before the retry policy's last attempt, without the dead-letter reason",
			"queue", url, "maxReceiveCount", q.maxReceives, "maxAttempts", spec.MaxAttempts)
	}
	lease := spec.AckDeadline
	if lease <= 0 {
		lease = q.visibility
	}
	r, err := p.newReceiver(spec.Name, q, lease)
	if err != nil {
		return nil, err // not r: a nil *receiver in a driver.Receiver is not nil
	}
	return r, nil
}

func (p *Provider) newReceiver(name string, q queueInfo, lease time.Duration) (*receiver, error) {
	vis := cmp.Or(visibilitySeconds(lease), 30)
	caps := p.Capabilities()
	caps.Ordering = q.fifo
	caps.NativeDeadLetter = q.dlqURL != ""
	caps.DefaultAckDeadline = time.Duration(vis) * time.Second
	r := &receiver{p: p, q: q, name: name, vis: vis, caps: caps}
	r.deletes = newBatcher(maxInflightCalls, r.sendDeletes)
	r.changes = newBatcher(maxInflightCalls, r.sendVisibility)
	r.polls = providerkit.NewPolls(p.life, &p.polls, r.giveBack)
	if !p.receivers.Add(r) {
		r.polls.Close()
		return nil, fmt.Errorf("aws: subscribe %q: %w", name, driver.ErrClosed)
	}
	return r, nil
}

// visibilitySeconds rounds d up to whole seconds within SQS's range, so a
// delay or lease is never shorter than asked.
func visibilitySeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	d = min(d, MaxVisibility)
	return int32(math.Ceil(d.Seconds()))
}

// Capabilities implements driver.ReceiverCapabilities.
func (r *receiver) Capabilities() driver.Capabilities { return r.caps }

// Receive long-polls the queue until at least one message arrives.
//
// When ctx ends (or the receiver closes) while a ReceiveMessage long poll
// is in flight, Receive returns at once but the call is not cancelled: SQS
// may already have taken messages for it, and a cancelled call would leave
// them invisible until their visibility timeout. The poll runs to its end
// (at most WaitTime); what it takes goes to the next Receive, or, once the
// receiver is closed, straight back to the queue (visibility 0). The next
// Receive waits for that poll instead of starting another.
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if r.closed.Load() {
		return 0, fmt.Errorf("aws: receive from %s: %w", r.q.url, driver.ErrClosed)
	}
	ds, err := r.polls.Receive(ctx, min(len(buf), maxBatch), r.poll)
	switch {
	case errors.Is(err, providerkit.ErrPollsClosed):
		return 0, fmt.Errorf("aws: receive from %s: %w", r.q.url, driver.ErrClosed)
	case err != nil:
		return 0, err
	}
	for i, d := range ds {
		buf[i] = d
	}
	return len(ds), nil
}

// poll is one ReceiveMessage long poll, on the provider's lifetime.
func (r *receiver) poll(ctx context.Context, max int) ([]*delivery, error) {
	ctx, cancel := context.WithTimeout(ctx, r.p.opts.WaitTime+pollSlack)
	defer cancel()
	in := &sqs.ReceiveMessageInput{QueueUrl: &r.q.url, MaxNumberOfMessages: int32(max),
		WaitTimeSeconds: int32(r.p.opts.WaitTime / time.Second), VisibilityTimeout: r.vis,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: systemAttrs}
	out, err := r.p.sqs.ReceiveMessage(ctx, in)
	if err != nil {
		if r.p.life.Err() != nil {
			return nil, fmt.Errorf("aws: receive from %s: %w", r.q.url, driver.ErrClosed)
		}
		return nil, mapErr(fmt.Errorf("aws: ReceiveMessage from %s: %w", r.q.url, err), driver.ErrSubscriptionNotFound)
	}
	ds := make([]*delivery, len(out.Messages))
	for i, m := range out.Messages {
		ds[i] = r.delivery(m)
	}
	return ds, nil
}

// giveBack makes messages that no Receive took visible again at once.
func (r *receiver) giveBack(ds []*delivery) {
	for _, d := range ds {
		if d.settle() {
			r.changes.add(&batchItem{handle: d.handle, msgID: d.msgID, done: make(chan struct{})})
		}
	}
}

func (r *receiver) delivery(m sqstypes.Message) *delivery {
	msg := Message{ID: awssdk.ToString(m.MessageId), Body: awssdk.ToString(m.Body), SourceARN: r.q.arn}
	if len(m.MessageAttributes) > 0 {
		msg.Attributes = make(map[string]Attribute, len(m.MessageAttributes))
		for k, a := range m.MessageAttributes {
			msg.Attributes[k] = Attribute{DataType: awssdk.ToString(a.DataType), StringValue: awssdk.ToString(a.StringValue), BinaryValue: a.BinaryValue}
		}
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		msg.SentTimestamp = time.UnixMilli(ms).UTC()
	}
	attempt, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	d := &delivery{r: r, handle: awssdk.ToString(m.ReceiptHandle), msgID: msg.ID,
		attempt: max(attempt, 1), group: m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]}
	if d.ev, d.decodeErr = DecodeMessage(msg); d.decodeErr != nil {
		d.ev = UndecodableEvent(msg)
	}
	return d
}

// Close stops receiving, makes the messages that polls took after their
// Receive had returned visible again, and waits (until ctx ends) for queued
// deletes and visibility changes to be sent. A long poll still running
// returns what it takes to the queue when it ends.
func (r *receiver) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.giveBack(r.polls.Close())
		if err := r.deletes.wait(ctx); err != nil {
			r.closeErr = fmt.Errorf("aws: close receiver of %s: queued deletes not sent: %w", r.q.url, err)
		} else if err := r.changes.wait(ctx); err != nil {
			r.closeErr = fmt.Errorf("aws: close receiver of %s: queued visibility changes not sent: %w", r.q.url, err)
		}
		r.p.receivers.Remove(r)
	})
	return r.closeErr
}

func (r *receiver) sendDeletes(ctx context.Context, items []*batchItem) {
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(items))
	for i, it := range items {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: awssdk.String(strconv.Itoa(i)), ReceiptHandle: awssdk.String(it.handle)}
	}
	out, err := r.p.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &r.q.url, Entries: entries})
	r.settleItems("DeleteMessageBatch", items, err, func() []sqstypes.BatchResultErrorEntry { return out.Failed })
}

func (r *receiver) sendVisibility(ctx context.Context, items []*batchItem) {
	entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(items))
	for i, it := range items {
		entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: awssdk.String(strconv.Itoa(i)),
			ReceiptHandle: awssdk.String(it.handle), VisibilityTimeout: it.secs}
	}
	out, err := r.p.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &r.q.url, Entries: entries})
	r.settleItems("ChangeMessageVisibilityBatch", items, err, func() []sqstypes.BatchResultErrorEntry { return out.Failed })
}

// settleItems records each item's outcome of a batch call, and logs the
// failures nobody waits for.
func (r *receiver) settleItems(op string, items []*batchItem, err error, failed func() []sqstypes.BatchResultErrorEntry) {
	if err != nil {
		err = fmt.Errorf("aws: %s on %s: %w", op, r.q.url, err)
		for _, it := range items {
			it.err = err
		}
	} else {
		for _, f := range failed() {
			i, convErr := strconv.Atoi(awssdk.ToString(f.Id))
			if convErr == nil && i >= 0 && i < len(items) {
				items[i].err = &EntryError{Op: op, Code: awssdk.ToString(f.Code), Message: awssdk.ToString(f.Message), Retryable: !f.SenderFault}
			}
		}
	}
	for _, it := range items {
		if it.async && it.err != nil {
			r.p.opts.Logger.Warn("aws: delete of an acked message failed; it will be redelivered after its visibility timeout",
				"queue", r.q.url, "messageId", it.msgID, "error", it.err)
		}
	}
}

// delivery is one received SQS message.
type delivery struct {
	r         *receiver
	ev        *driver.Event
	decodeErr error // the message claims to be a CloudEvent and is not one
	handle    string
	msgID     string
	group     string
	attempt   int

	mu      sync.Mutex
	settled bool
}

var errSettled = errors.New("aws: delivery already settled")

// Event implements driver.Delivery.
func (d *delivery) Event() *driver.Event { return d.ev }

// DecodeError implements driver.Undecodable: it is the reason a message
// that claims to be a CloudEvent is not a valid one (nil for every other
// message). The delivery's event is then the placeholder of UndecodableEvent.
func (d *delivery) DecodeError() error { return d.decodeErr }

// Attempt is the message's ApproximateReceiveCount.
func (d *delivery) Attempt() int { return d.attempt }

func (d *delivery) settle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled {
		return false
	}
	d.settled = true
	return true
}

// Ack deletes the message (see Options.SyncAck).
func (d *delivery) Ack(ctx context.Context) error {
	if !d.settle() {
		return errSettled
	}
	if !d.r.p.opts.SyncAck {
		d.r.deletes.add(&batchItem{handle: d.handle, msgID: d.msgID, async: true})
		return nil
	}
	it := &batchItem{handle: d.handle, msgID: d.msgID, done: make(chan struct{})}
	d.r.deletes.add(it)
	return waitItem(ctx, it)
}

func waitItem(ctx context.Context, it *batchItem) error {
	select {
	case <-it.done:
		return it.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Nack makes the message visible again after delay (rounded up to whole
// seconds, at most 12 hours) with ChangeMessageVisibility.
func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	if !d.settle() {
		return errSettled
	}
	return d.changeVisibility(ctx, visibilitySeconds(delay))
}

// ExtendLease implements driver.LeaseExtender: the message stays
// invisible for lease from now.
func (d *delivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	d.mu.Lock()
	settled := d.settled
	d.mu.Unlock()
	if settled {
		return errSettled
	}
	return d.changeVisibility(ctx, visibilitySeconds(lease))
}

func (d *delivery) changeVisibility(ctx context.Context, secs int32) error {
	it := &batchItem{handle: d.handle, secs: secs, done: make(chan struct{})}
	d.r.changes.add(it)
	return waitItem(ctx, it)
}
