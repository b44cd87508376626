package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/crossbustest"
	"github.com/crossbus/crossbus/patterns/chain"
)

// TestMarketplace runs the whole demo on the test kit's bus and a fresh
// database file, checks the final state of every scenario, and checks what
// the kit saw on the bus: every event handled or dead-lettered where the
// demo says, nothing left in flight.
func TestMarketplace(t *testing.T) {
	kit := crossbustest.New(t, crossbustest.WithRealClock()) // the chains' timers run on real time
	checkRun(t, Config{Events: 200, DBPath: filepath.Join(t.TempDir(), "marketplace.db"), bus: kit.Bus()})
	kit.WaitIdle()

	// The only dead letter is the sign-up whose SMS the carrier never took.
	dls := kit.DeadLetters("")
	require.Len(t, dls, 1, kit.Report())
	assert.Equal(t, "sms", dls[0].Subscription)
	kit.AssertDeadLettered("sms", crossbus.Field("data", "user").Equals("u-3"), "carrier gateway timeout")

	// Fan-out: each subscriber's handler ran once per sign-up, but for the
	// flaky SMS sender's retries; u-2's duplicate reached every subscriber
	// and was skipped by each.
	signups := len(kit.Published(signupTopic))
	assert.Equal(t, 5, signups, "four sign-ups and u-2's duplicate")
	for _, sub := range []string{"email", "marketing", "analytics"} {
		assert.Len(t, okRuns(kit.Handlings(sub)), 4, sub)
		acked := 0
		for _, st := range kit.Settlements(sub) {
			if st.Outcome == crossbustest.Acked {
				acked++
			}
		}
		assert.Equal(t, signups, acked, "%s acked every sign-up, the duplicate too", sub)
	}

	// Event sourcing: accounting handled each relayed ledger event once.
	relayed := kit.Published(payoutTopic)
	ids := map[string]bool{}
	for _, p := range relayed {
		ids[p.Event.ID()] = true
	}
	handled := map[string]int{}
	for _, h := range okRuns(kit.Handlings("accounting")) {
		handled[h.Event.ID()]++
	}
	assert.Len(t, handled, len(ids), "every relayed ledger event reached accounting")
	for id, n := range handled {
		assert.Equal(t, 1, n, "ledger event %s handled once", id)
	}
}

func okRuns(hs []crossbustest.Handling) []crossbustest.Handling {
	var out []crossbustest.Handling
	for _, h := range hs {
		if h.OK() {
			out = append(out, h)
		}
	}
	return out
}

// TestMarketplaceOnPostgres runs the whole demo with its state in
// PostgreSQL, in a schema of its own that the run drops at its end.
func TestMarketplaceOnPostgres(t *testing.T) {
	url := os.Getenv("CROSSBUS_POSTGRES_URL")
	if url == "" {
		t.Skip("CROSSBUS_POSTGRES_URL is not set: no PostgreSQL server to run the demo on (scripts/deps/postgres.sh starts one)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	conn, err := pgx.Connect(ctx, url)
	cancel()
	if err != nil {
		t.Skipf("PostgreSQL at CROSSBUS_POSTGRES_URL is unreachable, skipping: %v", err)
	}
	_ = conn.Close(context.Background())
	checkRun(t, Config{Events: 200, Store: url})
}

func TestRunRefusesAnUnknownStore(t *testing.T) {
	_, err := run(context.Background(), Config{Events: 10, Store: "mysql://x"}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "only postgres:// URLs")
}

// checkRun runs the demo with cfg and checks the final state of every
// scenario.
func checkRun(t *testing.T, cfg Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, cfg, &out)
	require.NoError(t, err, out.String())
	trace := out.String()

	t.Run("SimpleProcessing", func(t *testing.T) {
		th := res.Thumbnail
		assert.Equal(t, 2, th.Deliveries, "the event and its injected duplicate were delivered")
		assert.Equal(t, 1, th.Runs, "the duplicate was skipped by the idempotency store")
		assert.Equal(t, 256, th.Width)
		assert.Equal(t, 256, th.Height)
		assert.Equal(t, thumbnailedType, th.Notification)
		assert.Contains(t, trace, "cropped to 360x360")
	})

	t.Run("Chaining", func(t *testing.T) {
		o := res.Orders
		assert.Equal(t, map[string]chain.Status{"o-1001": chain.StatusCompleted, "o-1002": chain.StatusCompensated, "o-1003": chain.StatusCompleted}, o.Status)
		assert.Contains(t, o.Errors["o-1002"], "shipping.NoRoute")
		assert.Equal(t, map[string]int{"lamp": 8, "chair": 4, "desk": 1}, o.Stock, "o-1002's chair was restocked")
		assert.Equal(t, map[string]int{"o-1001": 5980, "o-1002": 0, "o-1003": 24900}, o.Charged, "o-1002 was refunded")
		assert.Equal(t, []string{"o-1002"}, o.Refunded)
		assert.ElementsMatch(t, []string{"o-1001", "o-1003"}, o.Emails)
		assert.Equal(t, 4, o.DuplicateCommands, "o-1001's four commands were each published twice")
		for _, step := range []string{"payment", "inventory", "shipping", "email"} {
			assert.Equal(t, 1, o.Runs["o-1001/"+step], "o-1001's %s ran once despite the duplicate", step)
		}
		assert.Equal(t, 2, o.Runs["o-1003/payment"], "o-1003's payment was retried once")
		assert.Equal(t, 1, o.Runs["o-1002/shipping"], "a non-retryable failure is not retried")
	})

	t.Run("FanOut", func(t *testing.T) {
		s := res.Signups
		all := []string{"u-1", "u-2", "u-3", "u-4"}
		for _, name := range []string{"email", "marketing", "analytics"} {
			assert.Equal(t, all, s.Handled[name], name)
			for _, u := range all {
				assert.Equal(t, 1, s.Runs[name][u], "%s ran once for %s (u-2's duplicate skipped)", name, u)
			}
			assert.Empty(t, s.DeadLetters[name], name)
		}
		assert.Equal(t, []string{"u-1", "u-2", "u-4"}, s.Handled["sms"])
		assert.Equal(t, 3, s.Runs["sms"]["u-3"], "u-3's text was tried three times")
		require.Len(t, s.DeadLetters["sms"], 1)
		dl := s.DeadLetters["sms"][0]
		assert.Equal(t, "u-3", dl.ID)
		assert.Equal(t, 3, dl.Attempts)
		assert.Contains(t, dl.Reason, "carrier gateway timeout")
		assert.Equal(t, int64(1), s.Stats["sms"].GaveUp)
	})

	t.Run("EventSourcing", func(t *testing.T) {
		p := res.Payouts
		assert.Greater(t, p.Appended, cfg.Events, "sales append a credit and a fee")
		assert.Equal(t, 1, p.Duplicates)
		for _, s := range sellers {
			assert.Equal(t, p.Expected[s], p.Replayed[s], "%s: replay after restart", s)
			assert.Equal(t, p.Expected[s], p.FromSnapshot[s], "%s: snapshot + later events after restart", s)
			assert.Equal(t, p.Expected[s], p.Projected[s], "%s: projection resumed from its checkpoint", s)
			assert.Greater(t, p.SnapshotAt[s], uint64(0), "%s was loaded from a snapshot", s)
			assert.GreaterOrEqual(t, p.Expected[s], 0)
		}
		assert.Equal(t, p.Appended, p.Relayed, "every appended event was relayed once, including those a crash left behind")
		assert.Equal(t, p.Appended, p.AccountingSeen)
	})
}

func TestRunRefusesBadConfig(t *testing.T) {
	_, err := run(context.Background(), Config{Events: 0}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "events must be positive")
}
