// Command marketplace is crossbus's main demo: a small marketplace on the
// embedded default (the mem:// bus and one sqlite file) that shows the four
// patterns of event-driven design end to end, with a readable trace:
//
//  1. simple processing: a Cloud Storage "object finalized" CloudEvent for
//     an uploaded image -> crop and resize to a square thumbnail -> store it
//     -> a notification event;
//  2. chaining: order placed -> payment -> inventory -> shipping ->
//     confirmation email, one order failing at shipping and compensated
//     (restock, refund);
//  3. fan-out: user signed up -> SMS, email, marketing, analytics, with a
//     flaky SMS sender retried and one message dead-lettered;
//  4. event sourcing: seller payouts as an append-only ledger, balances
//     rebuilt by replay and from snapshots, the same after a simulated crash
//     and restart, appended events relayed through a transactional outbox.
//
// Duplicate deliveries are injected along the way to show idempotency.
//
//	go run ./examples/marketplace [-events 300] [-db path/to/state.db]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// Config is what the flags set.
type Config struct {
	// Events is how many ledger entries the payout scenario appends.
	Events int
	// DBPath is the sqlite file; "" means a new file in a temporary
	// directory, removed at the end.
	DBPath string
}

// Result is the final state of a run, for the test.
type Result struct {
	Thumbnail ThumbnailResult
	Orders    OrdersResult
	Signups   SignupResult
	Payouts   PayoutResult
}

func main() {
	var cfg Config
	flag.IntVar(&cfg.Events, "events", 300, "ledger entries appended in the payout scenario")
	flag.StringVar(&cfg.DBPath, "db", "", "sqlite database file (default: a temporary file)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "marketplace:", err)
		os.Exit(1)
	}
}

// app is what the scenarios share: the bus, its memory provider (to read
// dead letters), the database and the trace.
type app struct {
	cfg   Config
	bus   *crossbus.Bus
	mem   *memory.Provider
	db    *sqlite.DB
	trace *trace
}

func run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	var res Result
	if cfg.Events <= 0 {
		return res, fmt.Errorf("events must be positive, got %d", cfg.Events)
	}
	if cfg.DBPath == "" {
		dir, err := os.MkdirTemp("", "marketplace-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		cfg.DBPath = filepath.Join(dir, "marketplace.db")
	}
	tr := newTrace(out)
	bus, err := crossbus.Open(ctx, "mem://")
	if err != nil {
		return res, err
	}
	defer bus.Close(context.Background())
	var mem *memory.Provider
	if !bus.As(&mem) {
		return res, fmt.Errorf("mem:// bus has no memory provider")
	}
	db, err := openDB(ctx, cfg.DBPath)
	if err != nil {
		return res, err
	}
	a := &app{cfg: cfg, bus: bus, mem: mem, db: db, trace: tr}
	defer func() { _ = a.db.Close() }()
	tr.title("crossbus marketplace: mem:// bus, state in %s (schema v%d)", cfg.DBPath, sqlite.SchemaVersion())

	if res.Thumbnail, err = a.thumbnails(ctx); err != nil {
		return res, fmt.Errorf("scenario 1 (simple processing): %w", err)
	}
	if res.Orders, err = a.orders(ctx); err != nil {
		return res, fmt.Errorf("scenario 2 (chaining): %w", err)
	}
	if res.Signups, err = a.signups(ctx); err != nil {
		return res, fmt.Errorf("scenario 3 (fan-out): %w", err)
	}
	if res.Payouts, err = a.payouts(ctx); err != nil {
		return res, fmt.Errorf("scenario 4 (event sourcing): %w", err)
	}
	tr.title("done in %v", tr.since().Round(time.Millisecond))
	return res, nil
}

// openDB opens the demo's database; payout events are relayed to the bus
// through the outbox.
func openDB(ctx context.Context, path string) (*sqlite.DB, error) {
	return sqlite.Open(ctx, path, sqlite.Options{Outbox: payoutRoute})
}

// quickRetry keeps the demo fast: retries after a few milliseconds.
func quickRetry(attempts int) crossbus.RetryPolicy {
	return crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Multiplier: 2}
}
