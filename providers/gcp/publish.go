package gcp

import (
	"context"
	"errors"
	"fmt"
	"slices"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// errKeyHeld is the cause reported for an event not sent because an earlier
// event with the same partition key failed in the same call: sending it
// would let it overtake the failed one.
var errKeyHeld = errors.New("gcp: not sent: an earlier event with the same partition key failed in this call")

// Publish encodes each event per the Pub/Sub CloudEvents binding and
// publishes it to topic, then waits until every event is stored or failed.
// Failures are per event (a *crossbus.PublishError): when an event with an
// ordering key fails, the later events of that key in the call are not sent
// either, and publishing for the key is resumed before Publish returns, so a
// caller retries exactly the failed events, in order.
func (p *Provider) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	pub, err := p.publisher(ctx, topic)
	if err != nil {
		return err
	}
	results := make([]*pubsub.PublishResult, len(events))
	keys := make([]string, len(events))
	var failed []crossbus.EventError
	var heldKeys map[string]bool // keys with a failed event in this call
	fail := func(i int, err error) {
		failed = append(failed, crossbus.EventError{Index: i, EventID: events[i].ID(), Err: err})
		if keys[i] != "" {
			if heldKeys == nil {
				heldKeys = map[string]bool{}
			}
			heldKeys[keys[i]] = true
		}
	}
	for i, e := range events {
		m, _, err := pubsubwire.Encoder{Mode: p.opts.ContentMode, Spelling: p.opts.AttributeSpelling}.Encode(e)
		if p.opts.DisableOrderingKeys {
			m.OrderingKey = ""
		}
		keys[i] = m.OrderingKey
		switch {
		case err != nil:
			fail(i, err)
		case heldKeys[m.OrderingKey]:
			fail(i, errKeyHeld)
		default:
			results[i] = pub.Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: m.Attributes, OrderingKey: m.OrderingKey})
		}
	}
	for i, r := range results {
		if r == nil {
			continue
		}
		if _, err := r.Get(ctx); err != nil {
			fail(i, p.watch.explain(topicError("publish to", topic, err)))
		}
	}
	for key := range heldKeys {
		// The client pauses a key after a failure so that nothing later
		// overtakes it; the caller now knows what failed and retries it.
		pub.ResumePublish(key)
	}
	return publishResult(events, failed)
}

// publishResult returns nil, the one error shared by every event, or a
// *crossbus.PublishError listing the failures by index.
func publishResult(events []*driver.Event, failed []crossbus.EventError) error {
	if len(failed) == 0 {
		return nil
	}
	if len(failed) == len(events) {
		first := failed[0].Err
		same := true
		for _, f := range failed[1:] {
			if f.Err.Error() != first.Error() {
				same = false
				break
			}
		}
		if same {
			return first
		}
	}
	slices.SortFunc(failed, func(a, b crossbus.EventError) int { return a.Index - b.Index })
	return &crossbus.PublishError{Failed: failed}
}

// publisher returns the cached publisher of topic, creating it (and, with
// AutoCreate, the topic) on first use.
func (p *Provider) publisher(ctx context.Context, topic string) (*pubsub.Publisher, error) {
	name := p.topicName(topic)
	p.mu.Lock()
	if p.isClosed() {
		p.mu.Unlock()
		return nil, fmt.Errorf("gcp: publish to %q: %w", topic, driver.ErrClosed)
	}
	pub := p.publishers[name]
	p.mu.Unlock()
	if pub != nil {
		return pub, nil
	}
	if p.opts.AutoCreate {
		if err := p.ensureTopic(ctx, name); err != nil {
			return nil, err
		}
	}
	pub = p.client.Publisher(name)
	pub.PublishSettings = p.opts.publishSettings()
	pub.EnableMessageOrdering = !p.opts.DisableOrderingKeys
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isClosed() {
		return nil, fmt.Errorf("gcp: publish to %q: %w", topic, driver.ErrClosed)
	}
	if existing := p.publishers[name]; existing != nil {
		return existing, nil
	}
	p.publishers[name] = pub
	return pub, nil
}

// publishOne publishes one event and waits for it to be stored.
func (p *Provider) publishOne(ctx context.Context, topic string, e *driver.Event) error {
	if err := p.Publish(ctx, topic, []*driver.Event{e}); err != nil {
		var pe *crossbus.PublishError
		if errors.As(err, &pe) && len(pe.Failed) == 1 {
			return pe.Failed[0].Err
		}
		return err
	}
	return nil
}

// ensureTopic creates the topic unless it exists.
func (p *Provider) ensureTopic(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := p.client.TopicAdminClient.CreateTopic(ctx, &pb.Topic{Name: name})
	if err != nil && grpcCode(err) != codes.AlreadyExists {
		return p.watch.explain(topicError("create", name, err))
	}
	return nil
}
