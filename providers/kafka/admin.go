package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/crossbus/crossbus/driver"
)

// maxTopicName is Kafka's limit on topic name length.
const maxTopicName = 249

// topicWait bounds how long a new topic may take to appear in metadata.
const topicWait = 10 * time.Second

// validTopic reports why name is not a legal Kafka topic name.
func validTopic(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case name == "." || name == "..":
		return errors.New(`"." and ".." are not allowed`)
	case len(name) > maxTopicName:
		return fmt.Errorf("%d characters, over Kafka's limit of %d", len(name), maxTopicName)
	}
	for i := 0; i < len(name); i++ {
		if !topicChar(name[i]) {
			return fmt.Errorf("character %q at position %d (allowed: a-z A-Z 0-9 . _ -)", name[i], i)
		}
	}
	return nil
}

func topicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// DeadLetterTopic is the topic holding a subscription's dead letters:
// "crossbus-dlq.<topic>.<subscription>". When the subscription name has
// characters Kafka does not allow in topic names, or either name contains a
// '.', they are replaced and a hash of both names is appended, so no two
// subscriptions share a queue; names that would be too long are shortened
// the same way.
func DeadLetterTopic(topic, subscription string) string {
	name := "crossbus-dlq." + topic + "." + subscription
	ambiguous := false
	b := []byte(name)
	for i := len("crossbus-dlq."); i < len(b); i++ {
		if !topicChar(b[i]) {
			b[i] = '_'
			ambiguous = true
		}
	}
	for i := 0; i < len(topic); i++ {
		if topic[i] == '.' {
			ambiguous = true
		}
	}
	for i := 0; i < len(subscription); i++ {
		if subscription[i] == '.' {
			ambiguous = true
		}
	}
	if !ambiguous && len(b) <= maxTopicName {
		return name
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(topic))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(subscription))
	suffix := fmt.Sprintf("-%016x", h.Sum64())
	if len(b) > maxTopicName-len(suffix) {
		b = b[:maxTopicName-len(suffix)]
	}
	return string(b) + suffix
}

// ensureTopic checks that a topic exists (cached once seen), creating it
// when create or AutoCreate is set.
func (p *Provider) ensureTopic(ctx context.Context, topic string, create bool) error {
	if _, ok := p.topics.Load(topic); ok {
		return nil
	}
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("%w: kafka: topic name %q: %v", driver.ErrInvalidOption, topic, err)
	}
	details, err := p.adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("kafka: look up topic %q: %w", topic, err)
	}
	d, ok := details[topic]
	exists := ok && d.Err == nil
	if ok && d.Err != nil && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka: look up topic %q: %w", topic, d.Err)
	}
	if !exists {
		if !create && !p.opts.AutoCreate {
			return fmt.Errorf("kafka: topic %q: %w", topic, driver.ErrTopicNotFound)
		}
		resp, err := p.adm.CreateTopic(ctx, p.opts.Partitions, p.opts.ReplicationFactor, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %q: %w", topic, err)
		}
	}
	p.topics.Store(topic, struct{}{})
	return nil
}

// CreateTopic creates a topic with Options.Partitions partitions (no-op if
// it exists).
func (p *Provider) CreateTopic(ctx context.Context, topic string) error {
	return p.ensureTopic(ctx, topic, true)
}

// CreateSubscription creates the consumer group of a subscription (GroupID) with its
// offsets at the end of every partition of topic, so it receives every event
// published from now on. A group that already has offsets for the topic is
// left as it is.
func (p *Provider) CreateSubscription(ctx context.Context, topic, subscription string) error {
	if err := p.ensureTopic(ctx, topic, true); err != nil {
		return err
	}
	return p.ensureGroup(ctx, topic, p.GroupID(topic, subscription), true)
}

// ensureGroup makes sure a group has committed offsets for topic; a new one
// starts at the end of every partition.
func (p *Provider) ensureGroup(ctx context.Context, topic, group string, create bool) error {
	if group == "" {
		return fmt.Errorf("%w: kafka: empty subscription (consumer group) name", driver.ErrInvalidOption)
	}
	committed, err := p.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a group nobody used yet
	}
	if err != nil {
		return fmt.Errorf("kafka: offsets of consumer group %q: %w", group, err)
	}
	for _, o := range committed[topic] {
		if o.Err == nil && o.At >= 0 {
			return nil
		}
	}
	if !create && !p.opts.AutoCreate {
		return fmt.Errorf("kafka: consumer group %q has no offsets for topic %q: %w", group, topic, driver.ErrSubscriptionNotFound)
	}
	ends, err := p.endOffsets(ctx, topic)
	if err != nil {
		return err
	}
	start := make(kadm.Offsets)
	ends.Each(func(l kadm.ListedOffset) {
		start.Add(kadm.Offset{Topic: topic, Partition: l.Partition, At: l.Offset, LeaderEpoch: -1})
	})
	resp, err := p.adm.CommitOffsets(ctx, group, start)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka: start consumer group %q at the end of topic %q: %w", group, topic, err)
	}
	return nil
}

// endOffsets lists a topic's end offsets, waiting for a topic created a
// moment ago to appear in the brokers' metadata.
func (p *Provider) endOffsets(ctx context.Context, topic string) (kadm.ListedOffsets, error) {
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(topicWait)
	for {
		ends, err := p.adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			return ends, nil
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.LeaderNotAvailable) || time.Now().After(deadline) {
			return nil, fmt.Errorf("kafka: end offsets of topic %q: %w", topic, err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka: end offsets of topic %q: %w", topic, ctx.Err())
		}
		delay = min(2*delay, time.Second)
	}
}
