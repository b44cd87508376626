package nats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus/driver"
)

// priorityGroup is the priority group of ordered (pinned-client) consumers.
const priorityGroup = "crossbus"

// validSubject reports why s is not a publishable NATS subject.
func validSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return errors.New("empty token (leading, trailing or double '.')")
		}
		if tok == "*" || tok == ">" {
			return fmt.Errorf("wildcard %q", tok)
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("control or space character at position %d", i)
		}
	}
	return nil
}

// entityName maps a topic or subscription name onto a JetStream stream or
// consumer name: characters JetStream forbids ('.', '*', '>', path
// separators, spaces) become '_', and a hash of the original is appended
// when anything was replaced, so distinct names never collide.
func entityName(prefix, name string) string {
	b := []byte(prefix + name)
	changed := false
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' {
			b[i] = '_'
			changed = true
		}
	}
	if !changed {
		return string(b)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return fmt.Sprintf("%s_%08x", b, h.Sum32())
}

func (p *Provider) subject(topic string) (string, error) {
	s := p.opts.SubjectPrefix + topic
	if err := validSubject(s); err != nil {
		return "", fmt.Errorf("%w: nats: topic %q is not a valid subject: %v", driver.ErrInvalidOption, topic, err)
	}
	return s, nil
}

// topic resolves where a topic's events go: the stream that captures its
// subject. With create (or AutoCreate) a missing stream is created.
func (p *Provider) topic(ctx context.Context, topic string, create bool) (*topicInfo, error) {
	return p.topicWith(ctx, topic, create, false)
}

// topicWith resolves a topic; dlq marks a provider-kept dead-letter queue.
func (p *Provider) topicWith(ctx context.Context, topic string, create, dlq bool) (*topicInfo, error) {
	if v, ok := p.topics.Load(topic); ok {
		return v.(*topicInfo), nil
	}
	subject, err := p.subject(topic)
	if err != nil {
		return nil, err
	}
	stream, err := p.js.StreamNameBySubject(ctx, subject)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create && !p.opts.AutoCreate {
			return nil, fmt.Errorf("nats: topic %q: no stream captures subject %q: %w", topic, subject, driver.ErrTopicNotFound)
		}
		stream, err = p.createStream(ctx, topic, subject, dlq)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: topic %q: %w", topic, err)
	}
	ti := &topicInfo{subject: subject, stream: stream}
	p.topics.Store(topic, ti)
	return ti, nil
}

// createStream creates a topic's stream. A dead-letter queue's stream is a
// work queue (a message leaves once its reader acknowledges it) without age
// or size limits, so nothing dead-lettered is ever dropped unread.
func (p *Provider) createStream(ctx context.Context, topic, subject string, dlq bool) (string, error) {
	cfg := jetstream.StreamConfig{
		Name:        entityName(p.opts.StreamPrefix, topic),
		Description: "crossbus topic " + topic,
		Subjects:    []string{subject},
		Retention:   p.opts.Retention,
		Storage:     p.opts.Storage,
		Replicas:    p.opts.Replicas,
		MaxAge:      p.opts.MaxAge,
		MaxBytes:    p.opts.MaxBytes,
		Duplicates:  p.opts.DuplicateWindow,
	}
	if dlq {
		cfg.Description = "crossbus dead letters " + topic
		cfg.Retention = jetstream.WorkQueuePolicy
		cfg.MaxAge, cfg.MaxBytes = 0, 0
	}
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, -1)
	_, err := p.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created concurrently by another client: use whichever stream
		// captures the subject now.
		return p.js.StreamNameBySubject(ctx, subject)
	}
	if err != nil {
		return "", fmt.Errorf("create stream %q for subject %q: %w", cfg.Name, subject, err)
	}
	return cfg.Name, nil
}

// CreateTopic creates the stream for a topic unless one already captures
// its subject.
func (p *Provider) CreateTopic(ctx context.Context, topic string) error {
	_, err := p.topic(ctx, topic, true)
	return err
}

// CreateSubscription creates the durable consumer of a subscription: it
// receives every event published to topic from now on. ordered makes it a
// pinned-client consumer (one client at a time; see the package
// documentation). An existing consumer is left as it is.
func (p *Provider) CreateSubscription(ctx context.Context, topic, subscription string, ordered bool) error {
	ti, err := p.topic(ctx, topic, true)
	if err != nil {
		return err
	}
	_, err = p.consumer(ctx, ti, subscription, consumerOpts{ordered: ordered, create: true})
	return err
}

// consumerOpts say how to find or make a consumer.
type consumerOpts struct {
	ordered    bool          // pinned-client priority policy
	ackWait    time.Duration // > 0: the consumer's AckWait
	create     bool          // create even without AutoCreate
	deliverAll bool          // start at the stream's first message (dead-letter readers)
	reset      bool          // forget what earlier clients were handed (see SubscribeDeadLetters)
}

func (p *Provider) consumerConfig(ti *topicInfo, subscription string, o consumerOpts) jetstream.ConsumerConfig {
	ackWait := o.ackWait
	if ackWait <= 0 {
		ackWait = p.opts.AckWait
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       entityName("", subscription),
		Description:   "crossbus subscription " + subscription,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: p.opts.MaxAckPending,
		FilterSubject: ti.subject,
		Replicas:      p.opts.Replicas,
	}
	if p.opts.MaxDeliver > 0 {
		cfg.MaxDeliver = p.opts.MaxDeliver
	}
	if o.deliverAll {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	if o.ordered {
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{priorityGroup}
		cfg.PinnedTTL = p.opts.PinnedTTL
	}
	return cfg
}

// consumer finds (or creates) a subscription's consumer. A positive ackWait
// different from the consumer's is applied to it.
func (p *Provider) consumer(ctx context.Context, ti *topicInfo, subscription string, o consumerOpts) (jetstream.Consumer, error) {
	want := p.consumerConfig(ti, subscription, o)
	c, err := p.js.Consumer(ctx, ti.stream, want.Durable)
	created := false
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if !o.create && !p.opts.AutoCreate {
			return nil, fmt.Errorf("nats: subscription %q: no consumer %q on stream %q: %w", subscription, want.Durable, ti.stream, driver.ErrSubscriptionNotFound)
		}
		c, err = p.js.CreateConsumer(ctx, ti.stream, want)
		created = err == nil
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = p.js.Consumer(ctx, ti.stream, want.Durable)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats: subscription %q (consumer %q on stream %q): %w", subscription, want.Durable, ti.stream, err)
	}
	have := c.CachedInfo().Config
	if have.FilterSubject != "" && have.FilterSubject != ti.subject {
		return nil, fmt.Errorf("%w: nats: consumer %q of stream %q filters %q, not the subject %q of this topic",
			driver.ErrInvalidOption, want.Durable, ti.stream, have.FilterSubject, ti.subject)
	}
	if o.reset && !created {
		if _, err := p.js.ResetConsumer(ctx, ti.stream, want.Durable); err != nil {
			return nil, fmt.Errorf("nats: subscription %q: reset consumer %q of stream %q: %w", subscription, want.Durable, ti.stream, err)
		}
	}
	if o.ackWait > 0 && have.AckWait != o.ackWait {
		have.AckWait = o.ackWait
		c, err = p.js.UpdateConsumer(ctx, ti.stream, have)
		if err != nil {
			return nil, fmt.Errorf("nats: subscription %q: set ack wait to %v: %w", subscription, o.ackWait, err)
		}
	}
	return c, nil
}
