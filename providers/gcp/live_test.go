package gcp_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
	"github.com/crossbus/crossbus/providers/providertest"
)

// liveProject returns the project for tests against Google Cloud, or skips
// the test saying why.
func liveProject(t *testing.T) string {
	t.Helper()
	if os.Getenv("CROSSBUS_GCP_LIVE") != "1" {
		t.Skip("live Google Cloud tests are off: set CROSSBUS_GCP_LIVE=1, CROSSBUS_GCP_PROJECT and credentials to run them")
	}
	project := os.Getenv("CROSSBUS_GCP_PROJECT")
	if project == "" {
		t.Skip("CROSSBUS_GCP_LIVE=1 but CROSSBUS_GCP_PROJECT is not set")
	}
	if os.Getenv("PUBSUB_EMULATOR_HOST") != "" {
		t.Skip("PUBSUB_EMULATOR_HOST is set: live tests must reach Google Cloud, not an emulator")
	}
	if _, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{"https://www.googleapis.com/auth/pubsub"}}); err != nil {
		t.Skipf("CROSSBUS_GCP_LIVE=1 but no Google credentials were found: %v", err)
	}
	return project
}

// liveHarness creates uniquely named topics and subscriptions in a real
// project and deletes them when the test ends.
type liveHarness struct {
	t       *testing.T
	admin   *gcp.Provider
	project string
	native  bool
	mu      sync.Mutex
	topics  []string
	subs    []string
}

func (h *liveHarness) NewProvider(ctx context.Context) (driver.Provider, error) {
	p, err := gcp.New(ctx, gcp.Options{Project: h.project, PublishDelay: time.Millisecond})
	if err != nil {
		return nil, err
	}
	if h.native {
		return everySubscriptionDeadLetters{p}, nil
	}
	return p, nil
}

func (h *liveHarness) CreateTopic(ctx context.Context, topic string) error {
	h.mu.Lock()
	h.topics = append(h.topics, topic)
	h.mu.Unlock()
	return h.admin.CreateTopic(ctx, topic)
}

func (h *liveHarness) CreateSubscription(ctx context.Context, topic, sub string, o providertest.SubscriptionOptions) error {
	cfg := gcp.SubscriptionConfig{Ordered: o.Ordered, AckDeadline: 10 * time.Second}
	if o.FilterPattern != "" {
		f, err := crossbus.CompilePattern(o.FilterPattern)
		if err != nil {
			return err
		}
		if cfg.Filter, _, err = gcp.SubscriptionFilter(f); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.subs = append(h.subs, sub)
	if h.native {
		cfg.DeadLetterTopic = sub + "-dlq"
		cfg.MaxDeliveryAttempts = min(max(o.MaxAttempts, 5), 100)
		h.topics = append(h.topics, cfg.DeadLetterTopic)
		h.subs = append(h.subs, gcp.DeadLetterSubscriptionName(sub))
	}
	h.mu.Unlock()
	return h.admin.CreateSubscription(ctx, topic, sub, cfg)
}

func (h *liveHarness) Features() providertest.Features {
	return providertest.Features{UnknownTopicFails: true, AckDeadline: 10 * time.Second, Timeout: 90 * time.Second, LoadEvents: 2000,
		NativeFilters: true, GlobalSubscriptionNames: true}
}

func (h *liveHarness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range h.subs {
		if err := h.admin.DeleteSubscription(ctx, s); err != nil {
			h.t.Logf("cleanup: %v", err)
		}
	}
	for _, tp := range h.topics {
		if err := h.admin.DeleteTopic(ctx, tp); err != nil {
			h.t.Logf("cleanup: %v", err)
		}
	}
	_ = h.admin.Close(ctx)
}

func newLiveHarness(t *testing.T, project string, native bool) providertest.Harness {
	admin, err := gcp.New(context.Background(), gcp.Options{Project: project})
	require.NoError(t, err)
	h := &liveHarness{t: t, admin: admin, project: project, native: native}
	t.Cleanup(h.cleanup)
	return h
}

// TestLiveConformance runs the conformance suite against Google Cloud
// Pub/Sub.
func TestLiveConformance(t *testing.T) {
	project := liveProject(t)
	t.Run("PortableDeadLetter", func(t *testing.T) {
		providertest.Run(t, func(t *testing.T) providertest.Harness { return newLiveHarness(t, project, false) })
	})
	t.Run("NativeDeadLetter", func(t *testing.T) {
		providertest.Run(t, func(t *testing.T) providertest.Harness { return newLiveHarness(t, project, true) })
	})
}

// TestLiveNackDelay checks what pstest cannot: that Google Cloud redelivers
// a message nacked with a delay no earlier than the delay.
func TestLiveNackDelay(t *testing.T) {
	project := liveProject(t)
	h := newLiveHarness(t, project, false).(*liveHarness)
	ctx := context.Background()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	topic, sub := "crossbus-live-"+hex.EncodeToString(suffix[:]), "crossbus-live-sub-"+hex.EncodeToString(suffix[:])
	require.NoError(t, h.CreateTopic(ctx, topic))
	require.NoError(t, h.CreateSubscription(ctx, topic, sub, providertest.SubscriptionOptions{}))
	p, err := h.NewProvider(ctx)
	require.NoError(t, err)
	defer p.Close(ctx)
	e := crossbus.NewEvent("com.example.live", "/live")
	require.NoError(t, p.Publish(ctx, topic, []*crossbus.Event{&e}))
	r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Name: sub})
	require.NoError(t, err)
	defer r.Close(ctx)
	buf := make([]driver.Delivery, 1)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err = r.Receive(rctx, buf)
	require.NoError(t, err)
	nacked := time.Now()
	require.NoError(t, buf[0].Nack(ctx, 5*time.Second))
	_, err = r.Receive(rctx, buf)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(nacked), 5*time.Second)
	require.Equal(t, e.ID(), buf[0].Event().ID())
	require.NoError(t, buf[0].Ack(ctx))
}
