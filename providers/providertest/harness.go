// Package providertest is the conformance suite every crossbus provider
// passes. A provider's tests supply a Harness that creates topics and
// subscriptions on a real server or emulator; Run then checks each guarantee
// of the delivery contract as a named subtest.
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, func(t *testing.T) providertest.Harness { return newHarness(t) })
//	}
package providertest

import (
	"context"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Harness connects the suite to one provider. Each subtest gets a new
// Harness, so entity names never collide between subtests.
type Harness interface {
	// NewProvider returns a new client of the provider, as a separate
	// process would make. The suite closes it.
	NewProvider(ctx context.Context) (driver.Provider, error)
	// CreateTopic creates a topic.
	CreateTopic(ctx context.Context, topic string) error
	// CreateSubscription creates a subscription that receives every event
	// published to topic from now on (every event opts.FilterPattern
	// matches, when the harness installs native filters).
	CreateSubscription(ctx context.Context, topic, subscription string, opts SubscriptionOptions) error
	// Features declares what the suite may expect of this provider.
	Features() Features
}

// SubscriptionOptions are the settings the suite asks for when it creates a
// subscription.
type SubscriptionOptions struct {
	Ordered bool
	// MaxAttempts is the retry policy the suite will use, for providers
	// whose native dead-letter policy counts deliveries.
	MaxAttempts int
	// FilterPattern is the event pattern (canonical JSON, as
	// driver.SubscriptionSpec.FilterPattern carries it) that the suite's
	// routes on the subscription will filter with, or "". A harness that
	// declares Features.NativeFilters installs its native translation (a
	// Pub/Sub subscription filter, a Service Bus rule, an EventBridge rule
	// pattern), as crossbus's provisioning does; others ignore it.
	FilterPattern string
}

// Features declare the provider's behaviour where the contract allows a
// choice.
type Features struct {
	// UnknownTopicFails: publishing to a topic that was never created fails
	// with crossbus.ErrTopicNotFound (providers that create topics on
	// demand set false).
	UnknownTopicFails bool
	// AckDeadline is the lease the suite asks for in redelivery tests; the
	// shortest the provider honours (default 2s).
	AckDeadline time.Duration
	// Timeout bounds each wait for deliveries (default 30s).
	Timeout time.Duration
	// MaxEventBytes is the provider's event size limit (default: from
	// Capabilities).
	MaxEventBytes int
	// LoadEvents is how many events the no-loss test sends (default 10,000).
	LoadEvents int
	// NativeFilters: CreateSubscription installs
	// SubscriptionOptions.FilterPattern as the subscription's native
	// filter, so the service never delivers an event the pattern does not
	// match (the suite's pattern translates exactly on every service that
	// filters). Without it the suite only checks that routes filter
	// locally.
	NativeFilters bool
	// GlobalSubscriptionNames: a subscription's name is unique in the
	// provider's project or account, not within its topic (a Pub/Sub
	// subscription, an SQS queue), so one name cannot be subscribed to
	// two topics and keep them apart. The guarantee
	// OneSubscriptionNameOnTwoTopicsKeepsThemApart is skipped. The zero
	// value is the stricter contract: a subscription is named within its
	// topic.
	GlobalSubscriptionNames bool
}

func (f Features) withDefaults(caps driver.Capabilities) Features {
	if f.AckDeadline == 0 {
		f.AckDeadline = 2 * time.Second
	}
	if f.Timeout == 0 {
		f.Timeout = 30 * time.Second
	}
	if f.MaxEventBytes == 0 {
		f.MaxEventBytes = caps.MaxEventBytes
	}
	if f.LoadEvents == 0 {
		f.LoadEvents = 10_000
	}
	return f
}

// env is one subtest's world: a harness, its buses, and unique names.
type env struct {
	t     *testing.T
	h     Harness
	ctx   context.Context
	f     Features
	buses []*crossbus.Bus
	seq   int

	fallbackDLT string
}
