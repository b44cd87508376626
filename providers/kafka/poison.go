package kafka

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
)

// Undecodable records (no CloudEvent in them, or a malformed one) cannot
// reach a handler. They are wrapped in an event of type TypeUndecodable that
// keeps the raw value as data, the key in the "rawkey" extension and the
// headers as JSON in the "rawheaders" extension, and produced to the
// subscription's dead-letter topic with the dead-letter extensions; the
// record is settled once that succeeded. A dead-letter reader skips such
// records (they stay in the log) and logs them.
const (
	// TypeUndecodable is the type of the event that carries an undecodable
	// record to the dead-letter topic.
	TypeUndecodable = "dev.crossbus.kafka.undecodable"
	// ExtRawHeaders holds the undecodable record's headers as JSON
	// (values as strings where they are UTF-8, base64 otherwise).
	ExtRawHeaders = "rawheaders"
	// ExtRawKey holds the undecodable record's key.
	ExtRawKey = "rawkey"

	maxRawHeaders = 8 << 10
	poisonTimeout = 10 * time.Second
	poisonTries   = 5
)

func (r *receiver) poison(part *partition, ent *entry, rec *kgo.Record, cause error) {
	log := r.p.opts.Logger.With("subscription", r.spec.Name, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "error", cause)
	if r.dlq {
		log.Error("kafka: undecodable record in a dead-letter topic skipped")
		part.settleUnhanded(ent)
		return
	}
	ev := crossbus.NewEvent(TypeUndecodable, "/kafka/topics/"+rec.Topic)
	ev.SetID(rec.Topic + "-" + strconv.FormatInt(int64(rec.Partition), 10) + "-" + strconv.FormatInt(rec.Offset, 10))
	ev.SetDataContentType("application/octet-stream")
	ev.DataEncoded = rec.Value
	if len(rec.Key) > 0 {
		ev.SetExtension(ExtRawKey, string(rec.Key))
	}
	hs := make(map[string]any, len(rec.Headers))
	for _, h := range rec.Headers {
		hs[h.Key] = h.Value // []byte marshals as base64
	}
	if b, err := json.Marshal(hs); err == nil && len(b) <= maxRawHeaders {
		ev.SetExtension(ExtRawHeaders, string(b))
	}
	dl := crossbus.DeadLetterEvent(&ev, crossbus.DeadLetterInfo{
		Reason: "undecodable record: " + cause.Error(), Attempts: 1,
		Topic: r.spec.Topic, Subscription: r.spec.Name, Time: time.Now(),
	})
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(r.ctx, poisonTimeout)
		err := r.deadLetterUndecodable(ctx, &dl)
		cancel()
		if err == nil {
			log.Warn("kafka: undecodable record dead-lettered", "deadLetterTopic", DeadLetterTopic(r.spec.Topic, r.spec.Name))
			part.settleUnhanded(ent)
			return
		}
		if try == poisonTries || r.ctx.Err() != nil {
			// Left unsettled: the partition's commits stop here until a
			// restart tries again. Nothing is dropped.
			log.Error("kafka: undecodable record could not be dead-lettered; partition commits are held at it", "publishError", err)
			return
		}
		select {
		case <-time.After(time.Duration(try) * time.Second):
		case <-r.ctx.Done():
			return
		}
	}
}

// deadLetterUndecodable stores an undecodable message's wrapper in the
// subscription's dead-letter queue, or, if that fails, in the route's
// dead-letter topic when it has one.
func (r *receiver) deadLetterUndecodable(ctx context.Context, dl *crossbus.Event) error {
	err := r.p.publishDeadLetter(ctx, r.spec.Topic, r.spec.Name, dl)
	if err != nil && r.spec.DeadLetterTopic != "" {
		err = r.p.Publish(ctx, r.spec.DeadLetterTopic, []*crossbus.Event{dl})
	}
	return err
}
