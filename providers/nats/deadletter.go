package nats

import (
	"context"
	"fmt"

	"github.com/crossbus/crossbus/driver"
)

// Dead-letter queues. JetStream has none of its own, so the provider keeps
// one per subscription: a work-queue stream (a message stays until a reader
// acknowledges it; no age or size limit) on the subject of the topic
// DeadLetterTopic(topic, subscription). Delivery.DeadLetter stores the event
// there with the crossbus dead-letter extensions before acknowledging the
// original, and SubscribeDeadLetters reads it back. The queue is an ordinary
// crossbus topic, so one subscription of it (for example a re-drive job) can
// also consume it through a Bus.

// deadLetterReader is the consumer SubscribeDeadLetters reads a queue with.
const deadLetterReader = "crossbus-deadletters"

// DeadLetterTopic is the topic holding a subscription's dead letters:
// "crossbus-dlq.<topic>.<subscription>" with characters that are not allowed
// in a subject token replaced (and a hash added when any were).
func DeadLetterTopic(topic, subscription string) string {
	return "crossbus-dlq." + entityName("", topic) + "." + entityName("", subscription)
}

func (p *Provider) publishDeadLetter(ctx context.Context, topic, subscription string, dl *driver.Event) error {
	dlTopic := DeadLetterTopic(topic, subscription)
	ti, err := p.topicWith(ctx, dlTopic, true, true)
	if err != nil {
		return fmt.Errorf("nats: dead-letter queue of subscription %q: %w", subscription, err)
	}
	msg, err := p.codec.Encode(ti.subject, dl)
	if err != nil {
		return err
	}
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("nats: store event %q in the dead-letter queue of subscription %q: %w", dl.ID(), subscription, p.publishErr(dlTopic, dl, err))
	}
	return nil
}

// SubscribeDeadLetters opens a receiver over a subscription's dead-letter
// queue, from its oldest dead letter. Acknowledging a dead letter removes it
// from the queue; Nack returns it.
//
// On the embedded server with no listener, where no other process can be
// reading, the first reader of a queue in the process resets the reader
// consumer to its ack floor: what an earlier process was handed and did
// not acknowledge is there again at once. (JetStream does not store a
// Nak: without the reset, dead letters a process read and returned just
// before it stopped would come back only after the ack wait.)
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	dlTopic := DeadLetterTopic(topic, subscription)
	ti, err := p.topicWith(ctx, dlTopic, true, true)
	if err != nil {
		return nil, fmt.Errorf("nats: dead-letter queue of subscription %q: %w", subscription, err)
	}
	spec := driver.SubscriptionSpec{Topic: dlTopic, Name: deadLetterReader}
	o := consumerOpts{create: true, deliverAll: true}
	p.dlqMu.Lock()
	if p.dlqReaders == nil {
		p.dlqReaders = map[string]int{}
	}
	o.reset = p.srv != nil && p.opts.EmbeddedListen == "" && p.dlqReaders[ti.stream] == 0
	p.dlqReaders[ti.stream]++
	p.dlqMu.Unlock()
	r, err := p.openReceiver(ctx, spec, ti, o, true)
	if err != nil {
		p.dlqReaderClosed(ti.stream)
		return nil, err
	}
	return r, nil
}

// dlqReaderClosed counts a dead-letter reader of stream out.
func (p *Provider) dlqReaderClosed(stream string) {
	p.dlqMu.Lock()
	p.dlqReaders[stream]--
	p.dlqMu.Unlock()
}

var _ driver.DeadLetterReader = (*Provider)(nil)
