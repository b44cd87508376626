package nats

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus"
)

// Undecodable messages (no CloudEvent in them, or a malformed one) cannot
// reach a handler. They are wrapped in an event of type TypeUndecodable that
// keeps the raw payload as data and the headers in the "rawheaders"
// extension, and moved to the subscription's dead-letter queue with the
// dead-letter extensions. In a dead-letter queue itself such a message is
// terminated (JetStream keeps it in the stream; it is just not redelivered).
const (
	// TypeUndecodable is the type of the event that carries an undecodable
	// message to the dead-letter topic.
	TypeUndecodable = "dev.crossbus.nats.undecodable"
	// ExtRawHeaders holds the undecodable message's headers as JSON.
	ExtRawHeaders = "rawheaders"

	maxRawHeaders = 8 << 10
	poisonTimeout = 10 * time.Second
	poisonRetry   = 30 * time.Second
)

func (r *receiver) poison(msg jetstream.Msg, cause error) {
	log := r.p.opts.Logger.With("subscription", r.spec.Name, "topic", r.spec.Topic, "subject", msg.Subject(), "error", cause)
	md, _ := msg.Metadata()
	var seq uint64
	attempts := 1
	if md != nil {
		seq = md.Sequence.Stream
		attempts = int(min(md.NumDelivered, 1<<31-1))
	}
	if r.dlq {
		log.Error("nats: undecodable message in a dead-letter queue terminated", "streamSequence", seq)
		_ = msg.TermWithReason("crossbus: undecodable: " + cause.Error())
		return
	}
	ev := crossbus.NewEvent(TypeUndecodable, "/nats/streams/"+r.stream)
	ev.SetID(r.stream + "-" + strconv.FormatUint(seq, 10))
	ev.SetSubject(msg.Subject())
	ev.SetDataContentType("application/octet-stream")
	ev.DataEncoded = msg.Data()
	if hs, err := json.Marshal(msg.Headers()); err == nil && len(hs) <= maxRawHeaders {
		ev.SetExtension(ExtRawHeaders, string(hs))
	}
	dl := crossbus.DeadLetterEvent(&ev, crossbus.DeadLetterInfo{
		Reason: "undecodable message: " + cause.Error(), Attempts: attempts,
		Topic: r.spec.Topic, Subscription: r.spec.Name, Time: time.Now(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), poisonTimeout)
	defer cancel()
	if err := r.deadLetterUndecodable(ctx, &dl); err != nil {
		log.Error("nats: undecodable message could not be dead-lettered; retrying later", "publishError", err)
		_ = msg.NakWithDelay(poisonRetry)
		return
	}
	log.Warn("nats: undecodable message dead-lettered", "deadLetterTopic", DeadLetterTopic(r.spec.Topic, r.spec.Name), "streamSequence", seq)
	if err := msg.Ack(); err != nil {
		log.Warn("nats: ack of dead-lettered message failed; it may be dead-lettered again", "ackError", err)
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
