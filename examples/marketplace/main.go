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
//	go run ./examples/marketplace -store postgres://user@host/db [-schema name]
//	go run ./examples/marketplace -bus nats+embedded:///tmp/marketplace/bus -db /tmp/marketplace/state.db \
//		-topology /tmp/marketplace/topology.json
//
// With -store, the state lives in PostgreSQL (stores/postgres), in a schema
// of its own (default: a new one per run, dropped at the end).
//
// With -bus, the demo runs on that bus instead of mem://. On a durable one
// (embedded NATS storing in a directory) what the demo leaves behind stays
// for the crossbus command to operate on afterwards: the sign-up that was
// dead-lettered, the sign-ups archived in the database (-db, required with
// -bus) for replay, and, with -topology, the fan-out router's topology.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/providers/memory"
	_ "github.com/crossbus/crossbus/providers/nats" // -bus nats://... and nats+embedded:///dir
)

// Config is what the flags set.
type Config struct {
	// Events is how many ledger entries the payout scenario appends.
	Events int
	// DBPath is the sqlite file; "" means a new file in a temporary
	// directory, removed at the end.
	DBPath string
	// Store, a postgres:// URL, keeps the state in PostgreSQL instead of
	// sqlite.
	Store string
	// Schema is the PostgreSQL schema; "" means a new one for the run,
	// dropped at the end.
	Schema string
	// Bus is the URL of the bus to run on: "" or mem://, or NATS
	// (nats://host:port, nats+embedded:///dir). A bus other than mem://
	// needs DBPath or Store: the state must last as long as the bus does.
	Bus string
	// Topology, when set, is the file the fan-out router's topology is
	// written to (JSON, as crossbus topology --file reads it).
	Topology string

	// bus, when set (by tests), is a bus over a memory provider to run on
	// instead of a new mem:// bus; the run leaves it open.
	bus *crossbus.Bus
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
	flag.StringVar(&cfg.Store, "store", "", "postgres:// URL: keep the state in PostgreSQL instead of sqlite")
	flag.StringVar(&cfg.Schema, "schema", "", "PostgreSQL schema with -store (default: a new one, dropped at the end)")
	flag.StringVar(&cfg.Bus, "bus", "", "bus URL: mem:// (default), nats://host:4222 or nats+embedded:///dir; other than mem:// needs -db or -store")
	flag.StringVar(&cfg.Topology, "topology", "", "write the fan-out router's topology (JSON) to this file")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "marketplace:", err)
		os.Exit(1)
	}
}

// app is what the scenarios share: the bus, its memory provider (nil on
// other buses), the database and the trace.
type app struct {
	cfg   Config
	bus   *crossbus.Bus
	mem   *memory.Provider
	db    store
	trace *trace
}

func run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	var res Result
	if cfg.Events <= 0 {
		return res, fmt.Errorf("events must be positive, got %d", cfg.Events)
	}
	busURL := cmp.Or(cfg.Bus, "mem://")
	if busURL != "mem://" && cfg.DBPath == "" && cfg.Store == "" {
		return res, fmt.Errorf("-bus %s needs -db (or -store): the state must last as long as the bus", busURL)
	}
	if cfg.Store != "" && cfg.Schema == "" {
		cfg.Schema = "marketplace_" + claimtoken.New()[:10]
		defer func() { _ = dropSchema(context.WithoutCancel(ctx), cfg.Store, cfg.Schema) }()
	}
	if cfg.Store == "" && cfg.DBPath == "" {
		dir, err := os.MkdirTemp("", "marketplace-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		cfg.DBPath = filepath.Join(dir, "marketplace.db")
	}
	// The files the demo leaves behind go where they were asked for.
	for _, f := range []string{cfg.DBPath, cfg.Topology} {
		if f != "" {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				return res, err
			}
		}
	}
	tr := newTrace(out)
	db, err := openStore(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { _ = db.Close() }()
	bus := cfg.bus
	if bus == nil {
		// The sign-ups are archived, so that they can be replayed.
		archive, err := ops.NewArchive(db.Archive(), ops.ArchiveOptions{Topics: []string{signupTopic}})
		if err != nil {
			return res, err
		}
		if bus, err = crossbus.Open(ctx, busURL, archive.BusOption()); err != nil {
			return res, err
		}
		defer bus.Close(context.Background())
	} else {
		busURL = "the test kit's"
	}
	var mem *memory.Provider
	bus.As(&mem)
	a := &app{cfg: cfg, bus: bus, mem: mem, db: db, trace: tr}
	tr.title("crossbus marketplace: %s bus, state in %s", busURL, db.where())

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

// quickRetry keeps the demo fast: retries after a few milliseconds.
func quickRetry(attempts int) crossbus.RetryPolicy {
	return crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Multiplier: 2}
}
