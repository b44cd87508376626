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

	"github.com/crossbus/crossbus/patterns/chain"
)

// TestMarketplace runs the whole demo on a fresh database file and checks
// the final state of every scenario.
func TestMarketplace(t *testing.T) {
	checkRun(t, Config{Events: 200, DBPath: filepath.Join(t.TempDir(), "marketplace.db")})
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
		assert.Equal(t, 4, o.DuplicateCommands, "o-1001's four commands were each delivered twice")
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
