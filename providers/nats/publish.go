package nats

import (
	"context"
	"errors"
	"fmt"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// publishWindow bounds the asynchronous publishes awaiting their
// acknowledgement within one Publish call.
const publishWindow = 512

// Publish sends the events to the topic's stream. The publishes are
// pipelined (JetStream async publish) and each event's acknowledgement is
// awaited, so nil means the stream stored every event. Events that failed are
// listed in a *crossbus.PublishError; re-publishing them is safe, as the
// stream drops duplicates by Nats-Msg-Id.
func (p *Provider) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	if p.isClosed() {
		return fmt.Errorf("nats: publish to %q: %w", topic, driver.ErrClosed)
	}
	ti, err := p.topic(ctx, topic, false)
	if err != nil {
		return err
	}
	var failed []crossbus.EventError
	fail := func(i int, err error) {
		failed = append(failed, crossbus.EventError{Index: i, EventID: events[i].ID(), Err: err})
	}
	futures := make([]jetstream.PubAckFuture, min(len(events), publishWindow))
	for start := 0; start < len(events); start += publishWindow {
		end := min(start+publishWindow, len(events))
		for i := start; i < end; i++ {
			futures[i-start] = nil
			msg, err := p.codec.Encode(ti.subject, events[i])
			if err != nil {
				fail(i, err)
				continue
			}
			f, err := p.js.PublishMsgAsync(msg)
			if err != nil {
				fail(i, p.publishErr(topic, events[i], err))
				continue
			}
			futures[i-start] = f
		}
		for i := start; i < end; i++ {
			f := futures[i-start]
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				fail(i, p.publishErr(topic, events[i], err))
			case <-ctx.Done():
				fail(i, fmt.Errorf("nats: publish to %q: acknowledgement not received: %w", topic, ctx.Err()))
			}
		}
	}
	if failed == nil {
		return nil
	}
	return &crossbus.PublishError{Failed: failed}
}

func (p *Provider) publishErr(topic string, e *driver.Event, err error) error {
	switch {
	case errors.Is(err, natsio.ErrMaxPayload):
		return fmt.Errorf("nats: event %q is over the server's max payload of %d bytes: %w", e.ID(), p.conn.MaxPayload(), driver.ErrTooLarge)
	case errors.Is(err, natsio.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		// The stream went away since it was looked up.
		p.topics.Delete(topic)
		return fmt.Errorf("nats: publish to %q: no stream captures the subject: %w", topic, driver.ErrTopicNotFound)
	case errors.Is(err, natsio.ErrConnectionClosed):
		return fmt.Errorf("nats: publish to %q: %w: %w", topic, driver.ErrClosed, err)
	}
	return fmt.Errorf("nats: publish to %q: %w", topic, err)
}
