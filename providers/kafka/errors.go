package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/crossbus/crossbus/driver"
)

// Receive errors. The consumer client reports fetch and group errors,
// retriable ones included (kgo.KeepRetryableFetchErrors), and the receiver
// maps the ones retrying cannot fix onto the portable sentinels, which stop
// the subscription (see driver.Receiver):
//
//   - TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED,
//     CLUSTER_AUTHORIZATION_FAILED, SASL_AUTHENTICATION_FAILED and the other
//     authorization failures (a revoked ACL, refused credentials):
//     driver.ErrUnauthorized;
//   - UNKNOWN_TOPIC_OR_PARTITION or UNKNOWN_TOPIC_ID, when the topic's
//     metadata then confirms that the topic no longer exists, or exists
//     with another topic ID (it was deleted and created again, and the
//     consumer cannot follow it): driver.ErrTopicNotFound.
//
// The same unknown-topic errors also show for a while after a topic is
// created or its partitions move, so they are transient while the topic is
// still there. Every other retriable error is left to the client, which
// retries it itself; the other errors are reported to the portable layer,
// which backs off and receives again.
//
// A Kafka subscription is a consumer group, which the brokers refuse to
// delete while it has members (NON_EMPTY_GROUP), so a running subscription
// ends with ErrTopicNotFound when its topic is deleted, not with
// driver.ErrSubscriptionNotFound.

// probeTimeout bounds the topic lookup after an unknown-topic error, and
// probeEvery spaces those lookups.
const (
	probeTimeout = 5 * time.Second
	probeEvery   = time.Second
)

// unauthorized reports an error that means the cluster refused the
// client's credentials or permissions.
func unauthorized(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed) || errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.DelegationTokenAuthorizationFailed)
}

// unknownTopic reports an error that may mean the topic was deleted.
func unknownTopic(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}

// fetchFailed handles one error of a poll; it returns the error that stops
// the subscription, or nil.
func (r *receiver) fetchFailed(topic string, partition int32, err error) error {
	log := r.p.opts.Logger
	switch {
	case unauthorized(err):
		return fmt.Errorf("kafka: subscription %q: topic %q: the cluster refused access (%w): %w", r.spec.Name, r.spec.Topic, driver.ErrUnauthorized, err)
	case unknownTopic(err):
		if gone := r.topicGone(); gone != nil {
			return gone
		}
		log.Debug("kafka: topic unknown to a broker for now", "subscription", r.spec.Name, "topic", topic, "partition", partition, "error", err)
	case kerr.IsRetriable(err):
		log.Debug("kafka: retriable fetch error; the client retries", "subscription", r.spec.Name, "topic", topic, "partition", partition, "error", err)
	default:
		log.Warn("kafka: fetch failed", "subscription", r.spec.Name, "topic", topic, "partition", partition, "error", err)
		r.report(fmt.Errorf("kafka: subscription %q: fetch from %s[%d]: %w", r.spec.Name, topic, partition, err))
	}
	return nil
}

// topicGone looks the topic up (at most once per probeEvery) and returns
// ErrTopicNotFound when it no longer exists or is another topic now.
func (r *receiver) topicGone() error {
	if time.Since(r.probed) < probeEvery {
		return nil
	}
	r.probed = time.Now()
	ctx, cancel := context.WithTimeout(r.ctx, probeTimeout)
	defer cancel()
	id, exists, err := r.p.lookupTopic(ctx, r.spec.Topic)
	switch {
	case err != nil && unauthorized(err):
		return fmt.Errorf("kafka: subscription %q: topic %q: the cluster refused access (%w): %w", r.spec.Name, r.spec.Topic, driver.ErrUnauthorized, err)
	case err != nil:
		return nil // no answer: nothing learned
	case !exists:
		r.p.topics.Delete(r.spec.Topic)
		return fmt.Errorf("kafka: subscription %q: topic %q was deleted: %w", r.spec.Name, r.spec.Topic, driver.ErrTopicNotFound)
	case r.topicID != noTopicID && id != noTopicID && id != r.topicID:
		return fmt.Errorf("kafka: subscription %q: topic %q was deleted and created again; the consumer cannot follow it: %w", r.spec.Name, r.spec.Topic, driver.ErrTopicNotFound)
	}
	return nil
}

// noTopicID is the ID of a topic on brokers that have no topic IDs.
var noTopicID kadm.TopicID

// lookupTopic asks the cluster whether topic exists, and its ID. It sends
// its own metadata request: the client's metadata cache (and kadm, which
// uses it) can still show a deleted topic for MetadataMinAge.
func (p *Provider) lookupTopic(ctx context.Context, topic string) (id kadm.TopicID, exists bool, err error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, p.admc)
	if err != nil {
		return id, false, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return id, false, nil
		case err != nil:
			return id, false, err
		}
		return t.TopicID, true, nil
	}
	return id, false, nil
}
