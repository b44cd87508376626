package kafka

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

// errSettled is returned by a second settle call on one delivery.
var errSettled = errors.New("kafka: delivery already settled")

// ExtRawKey is the extension of an undecodable record's placeholder event
// that holds the record's key (base64 when the key is not UTF-8).
const ExtRawKey = "rawkey"

// delivery is one handing of a fetched record to a consumer.
type delivery struct {
	r         *receiver
	part      *partition
	ent       *entry
	rec       *kgo.Record
	ev        driver.Event
	ctx       event.EventContextV1 // ev.Context points here (decoded records)
	attempt   int
	decodeErr error // why the record is not a CloudEvent (nil when it is one)
	settled   atomic.Bool
}

// newDelivery decodes a record for one handing. Each handing gets its own
// event, data included, so a handler that changes its event changes neither
// the record nor a later handing of it (after a Nack).
//
// A record that is not a CloudEvent (or is a malformed one) becomes an
// undecodable delivery: its event is the driver.NewUndecodableEvent
// placeholder with id "<topic>-<partition>-<offset>", source
// "/kafka/topics/<topic>", the value as data, the key in the rawkey
// extension and the headers in the rawheaders extension (a header repeated
// keeps its first value; keys and values that are not UTF-8 are base64
// encoded), and the portable layer dead-letters it.
func (r *receiver) newDelivery(part *partition, ent *entry, rec *kgo.Record, attempt int) *delivery {
	d := &delivery{r: r, part: part, ent: ent, rec: rec, attempt: attempt}
	d.ev.Context = &d.ctx
	if err := DecodeRecord(rec.Key, rec.Value, rec.Headers, &d.ev); err != nil {
		d.decodeErr = err
		d.ev = undecodableEvent(rec)
		return d
	}
	if len(d.ev.DataEncoded) > 0 { // the record's value, or part of it
		d.ev.DataEncoded = bytes.Clone(d.ev.DataEncoded)
	}
	return d
}

func undecodableEvent(rec *kgo.Record) driver.Event {
	var hs map[string]string
	if len(rec.Headers) > 0 {
		hs = make(map[string]string, len(rec.Headers))
		for _, h := range rec.Headers {
			if _, dup := hs[h.Key]; !dup {
				hs[h.Key] = text(h.Value)
			}
		}
	}
	id := rec.Topic + "-" + strconv.FormatInt(int64(rec.Partition), 10) + "-" + strconv.FormatInt(rec.Offset, 10)
	ev := driver.NewUndecodableEvent(id, "/kafka/topics/"+rec.Topic, bytes.Clone(rec.Value), hs)
	if len(rec.Key) > 0 {
		ev.SetExtension(ExtRawKey, text(rec.Key))
	}
	return ev
}

// text is b as a string when it is UTF-8, base64 otherwise.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeError says why the record is not a CloudEvent (nil when it is one).
func (d *delivery) DecodeError() error { return d.decodeErr }

// Event returns the delivered event.
func (d *delivery) Event() *driver.Event { return &d.ev }

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
	again := d.r.newDelivery(d.part, d.ent, d.rec, d.attempt+1)
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
func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	if d.settled.Load() && !d.r.dlq { // a dead letter's reader is refused below, settled or not
		return errSettled
	}
	err := providerkit.DeadLetterQueue(ctx, "kafka", d.r.dlq, &d.ev, info, func(ctx context.Context, dl *driver.Event) error {
		return d.r.p.publishDeadLetter(ctx, d.r.spec.Topic, d.r.spec.Name, dl)
	})
	if err != nil {
		return err
	}
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	d.part.settle(d.ent)
	return nil
}

func (p *Provider) publishDeadLetter(ctx context.Context, topic, subscription string, dl *driver.Event) error {
	dlTopic := DeadLetterTopic(topic, subscription)
	if err := p.ensureTopic(ctx, dlTopic, true); err != nil {
		return fmt.Errorf("kafka: dead-letter topic of subscription %q: %w", subscription, err)
	}
	rec, err := EncodeRecord(dlTopic, dl)
	if err != nil {
		return err
	}
	res, err := p.produce(ctx, []*kgo.Record{rec})
	if err != nil {
		return fmt.Errorf("kafka: store event %q in the dead-letter topic %q: no acknowledgement before the context ended: %w", dl.ID(), dlTopic, err)
	}
	if err := res.FirstErr(); err != nil {
		return fmt.Errorf("kafka: store event %q in the dead-letter topic %q: %w", dl.ID(), dlTopic, p.produceErr(dlTopic, dl, err))
	}
	return nil
}

var (
	_ driver.Delivery    = (*delivery)(nil)
	_ driver.Undecodable = (*delivery)(nil)
)
