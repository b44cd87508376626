package servicebus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// sender returns the cached SDK sender for an entity (a topic or queue).
func (p *Provider) sender(entity string) (*azservicebus.Sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.receivers.Closed() {
		return nil, fmt.Errorf("servicebus: send to %q: %w", entity, driver.ErrClosed)
	}
	if s := p.senders[entity]; s != nil {
		return s, nil
	}
	s, err := p.client.NewSender(entity, nil)
	if err != nil {
		return nil, fmt.Errorf("servicebus: sender for %q: %w", entity, err)
	}
	p.senders[entity] = s
	return s, nil
}

// dropSender forgets a sender whose link failed for good (for example a
// missing entity), so a later call starts afresh.
func (p *Provider) dropSender(entity string, s *azservicebus.Sender) {
	p.mu.Lock()
	if p.senders[entity] == s {
		delete(p.senders, entity)
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Close(ctx)
}

// Publish sends the events to the topic or queue named topic, in order,
// in as few message batches as the link's size limit allows. A batch is
// atomic on Service Bus, so a failed batch fails exactly its events.
func (p *Provider) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	s, err := p.sender(topic)
	if err != nil {
		return err
	}
	pub := publication{p: p, s: s, topic: topic}
	for i, e := range events {
		msg, err := messageFromEvent(e, p.opts.PropertyPrefix)
		if err != nil {
			pub.fail(i, e, err)
			continue
		}
		pub.add(ctx, i, e, msg)
	}
	pub.flush(ctx)
	return pub.result(len(events))
}

// publication is one Publish call: the open batch and what failed.
type publication struct {
	p        *Provider
	s        *azservicebus.Sender
	topic    string
	batch    *azservicebus.MessageBatch
	inBatch  []int
	events   []*driver.Event
	failed   []crossbus.EventError
	accepted int
	firstErr error // the first send error
	broken   error // no batch can be made: every later event fails with it
}

func (pub *publication) fail(i int, e *driver.Event, err error) {
	pub.failed = append(pub.failed, crossbus.EventError{Index: i, EventID: e.ID(), Err: err})
}

// add puts msg in the open batch, sending the batch first when full.
func (pub *publication) add(ctx context.Context, i int, e *driver.Event, msg *azservicebus.Message) {
	for attempt := 0; attempt < 2; attempt++ {
		if pub.broken != nil {
			pub.fail(i, e, pub.broken)
			return
		}
		if pub.batch == nil {
			b, err := pub.s.NewMessageBatch(ctx, nil)
			if err != nil {
				pub.broken = pub.p.sendError(pub.topic, pub.s, err)
				if pub.firstErr == nil {
					pub.firstErr = pub.broken
				}
				pub.fail(i, e, pub.broken)
				return
			}
			pub.batch = b
		}
		err := pub.batch.AddMessage(msg, nil)
		if err == nil {
			pub.inBatch = append(pub.inBatch, i)
			pub.events = append(pub.events, e)
			return
		}
		if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
			pub.fail(i, e, fmt.Errorf("servicebus: add event to batch: %w", err))
			return
		}
		if pub.batch.NumMessages() == 0 {
			break // too large on its own
		}
		pub.flush(ctx)
	}
	pub.fail(i, e, &crossbus.SizeError{EventID: e.ID(), Size: wireSize(msg), Limit: pub.p.opts.MaxMessageBytes})
}

// flush sends the open batch; its events fail together if it fails.
func (pub *publication) flush(ctx context.Context) {
	b := pub.batch
	pub.batch = nil
	if b == nil || b.NumMessages() == 0 {
		return
	}
	err := pub.s.SendMessageBatch(ctx, b, nil)
	if err != nil {
		err = pub.p.sendError(pub.topic, pub.s, err)
		for k, i := range pub.inBatch {
			pub.fail(i, pub.events[k], err)
		}
		if pub.firstErr == nil {
			pub.firstErr = err
		}
	} else {
		pub.accepted += len(pub.inBatch)
	}
	pub.inBatch, pub.events = pub.inBatch[:0], pub.events[:0]
}

func (pub *publication) result(n int) error {
	if len(pub.failed) == 0 {
		return nil
	}
	if pub.accepted == 0 && pub.firstErr != nil && len(pub.failed) == n {
		same := true
		for _, f := range pub.failed {
			if f.Err != pub.firstErr {
				same = false
				break
			}
		}
		if same {
			return pub.firstErr
		}
	}
	slices.SortFunc(pub.failed, func(a, b crossbus.EventError) int { return a.Index - b.Index })
	return &crossbus.PublishError{Failed: pub.failed}
}

// wireSize is the AMQP size of a message as the SDK encodes it.
func wireSize(m *azservicebus.Message) int {
	am := &amqp.Message{Data: [][]byte{m.Body}, ApplicationProperties: m.ApplicationProperties,
		Properties: &amqp.MessageProperties{MessageID: m.MessageID, ContentType: m.ContentType, Subject: m.Subject, GroupID: m.SessionID}}
	b, err := am.MarshalBinary()
	if err != nil {
		return len(m.Body)
	}
	return len(b)
}

// sendError maps an SDK send error to crossbus sentinels; a link that
// failed for good is dropped.
func (p *Provider) sendError(entity string, s *azservicebus.Sender, err error) error {
	switch {
	case isNotFound(err):
		p.dropSender(entity, s)
		return fmt.Errorf("servicebus: %w: %q: %v", driver.ErrTopicNotFound, entity, err)
	case isCondition(err, amqp.ErrCondMessageSizeExceeded):
		return fmt.Errorf("servicebus: %w: %v", driver.ErrTooLarge, err)
	case isUnauthorized(err):
		p.dropSender(entity, s)
		return fmt.Errorf("servicebus: send to %q: %w: %w", entity, driver.ErrUnauthorized, err)
	case isCondition(err, amqp.ErrCondNotAllowed):
		p.dropSender(entity, s)
	}
	return p.probe.explain(fmt.Errorf("servicebus: send to %q: %w", entity, err))
}

// Schedule publishes events to appear on the topic or queue at time at
// (Service Bus scheduled messages). It returns one sequence number per
// event, for CancelScheduled. Events are validated like Bus.Publish does.
func (p *Provider) Schedule(ctx context.Context, topic string, at time.Time, events ...*driver.Event) ([]int64, error) {
	msgs := make([]*azservicebus.Message, 0, len(events))
	for i, e := range events {
		if err := crossbus.Validate(e); err != nil {
			return nil, fmt.Errorf("servicebus: schedule event %d: %w", i, err)
		}
		if n, limit := driver.EncodedSize(e), p.opts.MaxMessageBytes-headroom; n > limit {
			return nil, &crossbus.SizeError{EventID: e.ID(), Size: n, Limit: limit}
		}
		m, err := messageFromEvent(e, p.opts.PropertyPrefix)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	s, err := p.sender(topic)
	if err != nil {
		return nil, err
	}
	seqs, err := s.ScheduleMessages(ctx, msgs, at, nil)
	if err != nil {
		return nil, p.sendError(topic, s, err)
	}
	return seqs, nil
}

// CancelScheduled cancels scheduled events by the sequence numbers
// Schedule returned.
func (p *Provider) CancelScheduled(ctx context.Context, topic string, seqs ...int64) error {
	s, err := p.sender(topic)
	if err != nil {
		return err
	}
	if err := s.CancelScheduledMessages(ctx, seqs, nil); err != nil {
		return p.sendError(topic, s, err)
	}
	return nil
}

// isNotFound reports a missing entity, however the SDK surfaced it.
func isNotFound(err error) bool {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeNotFound {
		return true
	}
	return isCondition(err, amqp.ErrCondNotFound)
}

func isCondition(err error, cond amqp.ErrCond) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Condition == cond
}

func hasCode(err error, code azservicebus.Code) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == code
}
