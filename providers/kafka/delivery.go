package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
)

// errSettled is returned by a second settle call on one delivery.
var errSettled = errors.New("kafka: delivery already settled")

// delivery is one handing of a fetched record to a consumer.
type delivery struct {
	r       *receiver
	part    *partition
	ent     *entry
	rec     *kgo.Record
	ev      crossbus.Event
	ctx     event.EventContextV1 // ev.Context points here
	attempt int
	settled atomic.Bool
}

// Event returns the delivered event.
func (d *delivery) Event() *crossbus.Event { return &d.ev }

// Attempt counts the handings of this record to this consumer (1 first).
func (d *delivery) Attempt() int { return d.attempt }

// Ack settles the record: its offset may be committed once every earlier
// record of its partition is settled too.
func (d *delivery) Ack(context.Context) error {
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	d.part.settle(d.ent)
	return nil
}

// Nack hands the record to a handler of this consumer again after delay
// (a local timer: Kafka cannot redeliver one record), with the next attempt
// number; its offset stays uncommitted meanwhile. When the consumer is
// closing or the partition is leaving, the record is left uncommitted for
// the partition's next owner instead.
func (d *delivery) Nack(_ context.Context, delay time.Duration) error {
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	d.part.takeBack()
	if d.r.isClosing() {
		return nil
	}
	again := &delivery{r: d.r, part: d.part, ent: d.ent, rec: d.rec, ev: d.ev, attempt: d.attempt + 1}
	again.ev.Context = d.ev.Context // shared, read-only: the first delivery is settled
	if delay <= 0 {
		d.r.q.push(again, true)
		return nil
	}
	t := time.NewTimer(delay)
	go func() {
		defer t.Stop()
		select {
		case <-t.C:
			d.r.q.push(again, true)
		case <-d.r.closing:
		}
	}()
	return nil
}

// DeadLetter produces the event, with the dead-letter extensions, to the
// subscription's dead-letter topic and then settles the record. If the
// produce fails the record stays unsettled and the error is returned.
func (d *delivery) DeadLetter(ctx context.Context, info crossbus.DeadLetterInfo) error {
	if d.r.dlq {
		return fmt.Errorf("kafka: a dead letter cannot be dead-lettered again: %w", crossbus.ErrNotSupported)
	}
	if d.settled.Load() {
		return errSettled
	}
	dl := crossbus.DeadLetterEvent(&d.ev, info)
	if err := d.r.p.publishDeadLetter(ctx, d.r.spec.Topic, d.r.spec.Name, &dl); err != nil {
		// Reported as not supported (now), so the portable layer falls
		// back to the route's dead-letter topic when it has one.
		return fmt.Errorf("kafka: the dead-letter queue refused event %q (%w): %w", d.ev.ID(), crossbus.ErrNotSupported, err)
	}
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	d.part.settle(d.ent)
	return nil
}

func (p *Provider) publishDeadLetter(ctx context.Context, topic, subscription string, dl *crossbus.Event) error {
	dlTopic := DeadLetterTopic(topic, subscription)
	if err := p.ensureTopic(ctx, dlTopic, true); err != nil {
		return fmt.Errorf("kafka: dead-letter topic of subscription %q: %w", subscription, err)
	}
	rec, err := EncodeRecord(dlTopic, dl)
	if err != nil {
		return err
	}
	if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("kafka: store event %q in the dead-letter topic %q: %w", dl.ID(), dlTopic, p.produceErr(dlTopic, dl, err))
	}
	return nil
}

var _ crossbus.Delivery = (*delivery)(nil)
