package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Publish produces the events to topic and waits until the brokers
// acknowledged each of them (the client is an idempotent producer with
// acks=all by default, so a retried send is not written twice). Events of one
// partition key keep their order. Failures are listed per event in a
// *crossbus.PublishError.
func (p *Provider) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	if p.isClosed() {
		return fmt.Errorf("kafka: publish to %q: %w", topic, driver.ErrClosed)
	}
	if err := p.ensureTopic(ctx, topic, false); err != nil {
		return err
	}
	var failed []crossbus.EventError
	recs := make([]*kgo.Record, 0, len(events))
	index := make([]int, 0, len(events)) // recs[i] is events[index[i]]
	for i, e := range events {
		r, err := EncodeRecord(topic, e)
		if err != nil {
			failed = append(failed, crossbus.EventError{Index: i, EventID: e.ID(), Err: err})
			continue
		}
		recs = append(recs, r)
		index = append(index, i)
	}
	if len(recs) > 0 {
		results, err := p.produce(ctx, recs)
		if err != nil {
			// The context ended first: the outcome of every record sent is
			// unknown (the client may still write them).
			for _, i := range index {
				failed = append(failed, crossbus.EventError{Index: i, EventID: events[i].ID(),
					Err: fmt.Errorf("kafka: publish to %q: no acknowledgement from brokers %s before the context ended (the event may still be written): %w",
						topic, strings.Join(p.opts.Brokers, ","), err)})
			}
			slices.SortFunc(failed, func(a, b crossbus.EventError) int { return a.Index - b.Index })
		} else if results.FirstErr() != nil {
			pos := make(map[*kgo.Record]int, len(recs))
			for i, r := range recs {
				pos[r] = index[i]
			}
			for _, res := range results {
				if res.Err == nil {
					continue
				}
				i := pos[res.Record]
				failed = append(failed, crossbus.EventError{Index: i, EventID: events[i].ID(), Err: p.produceErr(topic, events[i], res.Err)})
			}
		}
	}
	if failed == nil {
		return nil
	}
	return &crossbus.PublishError{Failed: failed}
}

// produce sends recs and waits for the brokers' answers, or for ctx to end,
// and then returns ctx's error. The client fails records still buffered
// when their context ends, but not a request already sent (an idempotent
// producer cannot know whether it was written), so during a broker outage
// ProduceSync alone holds its caller until the connection gives up. The
// goroutine that waits for it ends when the client settles the records: a
// broker answers, they time out (kgo.RecordDeliveryTimeout), or Close
// fails them.
func (p *Provider) produce(ctx context.Context, recs []*kgo.Record) (kgo.ProduceResults, error) {
	if ctx.Done() == nil {
		return p.cl.ProduceSync(ctx, recs...), nil
	}
	done := make(chan kgo.ProduceResults, 1)
	go func() { done <- p.cl.ProduceSync(ctx, recs...) }()
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		select {
		case res := <-done: // answered at the same moment
			return res, nil
		default:
		}
		return nil, ctx.Err()
	}
}

func (p *Provider) produceErr(topic string, e *driver.Event, err error) error {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Errorf("kafka: event %q is over the broker's record size limit: %w: %w", e.ID(), driver.ErrTooLarge, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		p.topics.Delete(topic)
		return fmt.Errorf("kafka: publish to %q: %w", topic, driver.ErrTopicNotFound)
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("kafka: publish to %q: %w", topic, driver.ErrClosed)
	}
	return fmt.Errorf("kafka: publish to %q: %w", topic, err)
}
