package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/providers/chaos"
	"github.com/crossbus/crossbus/providers/nats"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// The soak test runs the marketplace's flows — seller ledger entries
// applied through the transactional inbox, and order chains (payment,
// inventory, shipping, compensated when shipping fails) — on a durable bus
// (embedded NATS JetStream in a directory) under the chaos provider: 10% of
// publishes fail, 10% of handler runs fail, 5% of deliveries are
// duplicated, deliveries are reordered between keys (and some delayed,
// some acknowledgements lost), and the consumer process is killed with
// SIGKILL in the middle of its batches and started again. It ends with
// exact balances, stock and charges, every chain in the state its order
// calls for, no effect applied twice, and every dead letter one the test
// planned.
//
// The parent publishes everything (retrying what the chaos provider failed),
// then runs the test binary as the consumer, again and again: each run but
// the last kills itself inside a ledger handler, after its writes and
// before their commit, while other handlers are mid-way too; the last
// runs until all is settled. Short by default (about 20s); CROSSBUS_SOAK=long
// (make soak) runs 100,000 ledger events with more kills.
const (
	soakDirEnv    = "CROSSBUS_SOAK_DIR"  // the consumer's directory (bus, database, plan, stats)
	soakPlanEnv   = "CROSSBUS_SOAK_PLAN" // "kill:N" or "finish"
	soakLedger    = "soak-ledger"
	soakLedgerSub = "ledger"
	soakOrders    = "soak-orders"
	soakIntakeSub = "order-intake"
	soakLease     = 2 * time.Second // JetStream ack wait and idempotency lease
)

// soakSize is one run's size.
type soakSize struct {
	Ledger, Orders, Sellers int
	Kills                   []int // ledger handler runs after which each killed consumer dies
	ChildMax                time.Duration
}

func soakSizeFromEnv() soakSize {
	if os.Getenv("CROSSBUS_SOAK") == "long" {
		return soakSize{Ledger: 100_000, Orders: 2_000, Sellers: 40, Kills: []int{9_000, 20_000, 35_000}, ChildMax: 20 * time.Minute}
	}
	if raceEnabled { // the race detector slows the consumer about tenfold
		return soakSize{Ledger: 1_000, Orders: 30, Sellers: 12, Kills: []int{300}, ChildMax: 2 * time.Minute}
	}
	return soakSize{Ledger: 3_000, Orders: 60, Sellers: 12, Kills: []int{700}, ChildMax: 2 * time.Minute}
}

// soakChaos is the fault mix of every process.
func soakChaos(seed uint64) chaos.Options {
	return chaos.Options{Seed: seed, PublishError: 0.10, Duplicate: 0.05, Reorder: 0.5, Delay: 0.02, MaxDelay: 50 * time.Millisecond,
		LostAck: 0.01, ReceiveError: 0.01}
}

// soakHandlerErrors is the share of handler runs that fail (and are retried).
const soakHandlerErrors = 0.10

// soakPlan is what the parent tells the consumers: what must be applied.
type soakPlan struct {
	LedgerApplied int      // ledger events that must take effect (published, not poison)
	Orders        []string // order ids, each a chain instance
	Size          soakSize
}

// soakStats is what a consumer run counted; it rewrites its stats file
// every 100ms, so a killed run's figures are at most that old.
type soakStats struct {
	Faults         chaos.Faults
	LedgerRuns     int64 // ledger handler runs
	LedgerFailures int64 // of them, injected failures
	Redeliveries   int64 // ledger handler runs at attempt > 1
	Suppressed     int64 // duplicates the idempotency store found done
	StepRuns       int64 // chain step handler runs (do and undo)
	StepFailures   int64 // of them, injected failures
	StepRepeats    int64 // step effects found applied already (not applied again)
	Killed         string
}

// TestSoakConsumer is not a test on its own: TestSoakUnderChaos runs the
// test binary again with soakDirEnv set, and this function consumes.
func TestSoakConsumer(t *testing.T) {
	dir := os.Getenv(soakDirEnv)
	if dir == "" {
		t.Skip("consumer process of TestSoakUnderChaos; runs only when " + soakDirEnv + " is set")
	}
	killAt := 0
	if p := os.Getenv(soakPlanEnv); strings.HasPrefix(p, "kill:") {
		n, err := strconv.Atoi(strings.TrimPrefix(p, "kill:"))
		require.NoError(t, err)
		killAt = n
	}
	var plan soakPlan
	raw, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &plan))
	ctx := context.Background()
	deadline := time.Now().Add(plan.Size.ChildMax - 10*time.Second)

	db, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{})
	require.NoError(t, err)
	defer db.Close()
	np, err := nats.New(ctx, nats.Options{EmbeddedDir: filepath.Join(dir, "bus"), AutoCreate: true, AckWait: soakLease, Prefetch: 16})
	require.NoError(t, err)
	cp := chaos.New(np, soakChaos(uint64(time.Now().UnixNano())))
	logs, err := os.OpenFile(filepath.Join(dir, "consumer.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer logs.Close()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))
	bus, err := crossbus.New(cp, crossbus.WithLogger(logger))
	require.NoError(t, err)

	c := &soakConsumer{db: db, cp: cp, killAt: int64(killAt), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
	stop := c.writeStats(filepath.Join(dir, "stats-"+strconv.Itoa(os.Getpid())+".json"))
	defer stop()

	// Order chains: coordinator and worker in this process, state in the
	// database, so a killed run's chains resume in the next.
	def := soakChainDefinition()
	quick := []crossbus.RouteOption{crossbus.WithConcurrency(8), crossbus.WithAckDeadline(soakLease),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 50, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})}
	worker, err := chain.NewWorker(def, bus, db.Chains(), c.stepHandlers(), chain.WorkerOptions{Lease: soakLease, RouteOptions: quick, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, worker.Start(ctx))
	coord, err := chain.NewCoordinator(def, bus, db.Chains(), chain.CoordinatorOptions{RedispatchDelay: 100 * time.Millisecond, RouteOptions: quick, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, coord.Start(ctx))

	r, err := crossbus.NewRouter(bus, quick...)
	require.NoError(t, err)
	require.NoError(t, r.Handle(soakOrders, soakIntakeSub, crossbus.Typed(func(ctx context.Context, e *crossbus.Event, o PlacedOrder) error {
		if _, err := coord.Begin(ctx, o.ID, o); err != nil && !errors.Is(err, chain.ErrExists) {
			return err
		}
		return nil
	})))
	require.NoError(t, r.Handle(soakLedger, soakLedgerSub, crossbus.HandlerFunc(c.ledger),
		crossbus.WithIdempotency(&countingStore{IdempotencyStore: db.Idempotency(), n: &c.suppressed},
			crossbus.IdempotencyOptions{Transactional: true, Lease: soakLease, TTL: 24 * time.Hour}),
		crossbus.WithConcurrency(8), crossbus.WithPrefetch(16),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 50, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	<-r.Ready()
	require.NoError(t, r.Err())

	if killAt > 0 {
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		dumpGoroutines(dir)
		t.Fatalf("the kill point (ledger run %d) was never reached (%d runs)", killAt, c.ledgerRuns.Load())
	}

	// The last consumer: until every ledger event took effect, every chain
	// finished, and the consumed subscriptions hold nothing.
	var js jetstream.JetStream
	require.True(t, bus.As(&js))
	pending := func(topic, sub string) uint64 {
		stream, err := js.StreamNameBySubject(ctx, topic)
		require.NoError(t, err)
		cons, err := js.Consumer(ctx, stream, sub)
		require.NoError(t, err)
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		return info.NumPending + uint64(info.NumAckPending)
	}
	progress, err := os.OpenFile(filepath.Join(dir, "progress.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer progress.Close()
	var lastProgress time.Time
	for {
		var applied int
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT COUNT(DISTINCT event_id) FROM ledger_effects`).Scan(&applied))
		unfinished, left := -1, uint64(0)
		if applied == plan.LedgerApplied || time.Since(lastProgress) >= time.Second {
			unfinished = 0
			for _, id := range plan.Orders {
				inst, err := coord.Get(ctx, id)
				if err != nil || !inst.Status.Finished() {
					unfinished++
				}
			}
			left = pending(soakLedger, soakLedgerSub) + pending(soakOrders, soakIntakeSub)
		}
		if time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			fmt.Fprintf(progress, "%s applied %d/%d unfinished chains %d pending %d stats %+v\n", time.Now().Format("15:04:05.000"), applied, plan.LedgerApplied, unfinished, left, c.stats())
		}
		if applied == plan.LedgerApplied && unfinished == 0 && left == 0 {
			break
		}
		if time.Now().After(deadline) {
			dumpGoroutines(dir)
			t.Fatalf("after %v: %d of %d ledger events applied, %d of %d chains unfinished, %d deliveries pending",
				plan.Size.ChildMax, applied, plan.LedgerApplied, unfinished, len(plan.Orders), left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, coord.Close(ctx))
	require.NoError(t, worker.Close(ctx))
	require.NoError(t, bus.Close(ctx))
}

// soakConsumer is one consumer process's handlers and counters.
type soakConsumer struct {
	db     *sqlite.DB
	cp     *chaos.Provider
	killAt int64

	rngMu sync.Mutex
	rng   *rand.Rand

	ledgerRuns, ledgerFailures, redeliveries, suppressed atomic.Int64
	stepRuns, stepFailures, stepRepeats                  atomic.Int64
	killed                                               atomic.Value
}

func (c *soakConsumer) fail() bool {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.Float64() < soakHandlerErrors
}

func (c *soakConsumer) stats() soakStats {
	s := soakStats{Faults: c.cp.Faults(), LedgerRuns: c.ledgerRuns.Load(), LedgerFailures: c.ledgerFailures.Load(),
		Redeliveries: c.redeliveries.Load(), Suppressed: c.suppressed.Load(), StepRuns: c.stepRuns.Load(),
		StepFailures: c.stepFailures.Load(), StepRepeats: c.stepRepeats.Load()}
	s.Killed, _ = c.killed.Load().(string)
	return s
}

// writeStats rewrites path with the counters every 100ms and once more at
// the end.
func (c *soakConsumer) writeStats(path string) (stop func()) {
	write := func() {
		raw, _ := json.Marshal(c.stats())
		tmp := path + ".tmp"
		if os.WriteFile(tmp, raw, 0o600) == nil {
			_ = os.Rename(tmp, path)
		}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				write()
			case <-quit:
				write()
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// ledger applies a ledger entry in the inbox transaction: an effect row (no
// unique constraint: an entry applied twice shows as two rows) and the
// seller's balance. Poison entries (negative amounts) are refused for good.
func (c *soakConsumer) ledger(ctx context.Context, e *crossbus.Event) error {
	run := c.ledgerRuns.Add(1)
	if info, _ := crossbus.DeliveryInfoFrom(ctx); info.Attempt > 1 {
		c.redeliveries.Add(1)
	}
	entry, err := crossbus.DataAs[Entry](e)
	if err != nil {
		return crossbus.Permanent(err)
	}
	if entry.Cents < 0 {
		return crossbus.Permanent(fmt.Errorf("poison ledger entry: negative amount %d", entry.Cents))
	}
	if c.fail() {
		c.ledgerFailures.Add(1)
		return errors.New("ledger database busy (injected)")
	}
	tx, ok := sqlite.TxFrom(ctx)
	if !ok {
		return crossbus.Permanent(errors.New("no inbox transaction"))
	}
	seller := strings.TrimPrefix(e.Subject(), "seller-")
	delta := entry.Cents
	if e.Type() == feeType {
		delta = -delta
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_effects (event_id, seller, delta) VALUES (?, ?, ?)`, e.ID(), seller, delta); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO balances (seller, cents) VALUES (?, ?)
		ON CONFLICT (seller) DO UPDATE SET cents = cents + excluded.cents`, seller, delta); err != nil {
		return err
	}
	if c.killAt > 0 && run >= c.killAt {
		// Mid-batch: other handlers are running, deliveries are queued and
		// leased; this one's writes are not committed. (The first run from
		// killAt on that gets here: the run numbered killAt may have been
		// poison or an injected failure, which return earlier.)
		c.killed.Store(e.ID())
		raw, _ := json.Marshal(c.stats())
		_ = os.WriteFile(filepath.Join(os.Getenv(soakDirEnv), "killed-"+strconv.Itoa(os.Getpid())+".json"), raw, 0o600)
		killSelf()
	}
	return nil
}

// soakChainDefinition is the marketplace's order chain without the e-mail.
func soakChainDefinition() *chain.Definition {
	retry := chain.RetryPolicy{MaxAttempts: 50, InitialInterval: 10 * time.Millisecond, BackoffRate: 2, MaxDelay: 200 * time.Millisecond}
	ship := retry
	ship.NonRetryable = []string{"shipping.NoRoute"}
	return &chain.Definition{
		Name:    "soakorder",
		Timeout: time.Hour,
		Steps: []chain.Step{
			{Name: "payment", Retry: retry, AttemptTimeout: 30 * time.Second},
			{Name: "inventory", Retry: retry, AttemptTimeout: 30 * time.Second},
			{Name: "shipping", Retry: ship, AttemptTimeout: 30 * time.Second},
		},
	}
}

// effect applies a step's effect once: the (order, step, kind) row and the
// change commit together, and a row already there means the change was made.
func (c *soakConsumer) effect(ctx context.Context, order, step, kind string, apply func(tx *sql.Tx) error) error {
	c.stepRuns.Add(1)
	if c.fail() {
		c.stepFailures.Add(1)
		return errors.New("service unavailable (injected)")
	}
	return c.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO step_effects (order_id, step, kind) VALUES (?, ?, ?)`, order, step, kind)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			c.stepRepeats.Add(1)
			return nil
		}
		return apply(tx)
	})
}

func (c *soakConsumer) stepHandlers() map[string]chain.Handler {
	order := func(in *chain.Input) PlacedOrder {
		var o PlacedOrder
		_ = in.Decode(&o)
		return o
	}
	return map[string]chain.Handler{
		"payment": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o := order(in)
				return nil, c.effect(ctx, o.ID, "payment", "do", func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO charges (order_id, cents) VALUES (?, ?)
						ON CONFLICT (order_id) DO UPDATE SET cents = cents + excluded.cents`, o.ID, o.PriceCents*o.Quantity)
					return err
				})
			},
			Undo: func(ctx context.Context, in *chain.Input) error {
				o := order(in)
				return c.effect(ctx, o.ID, "payment", "undo", func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `UPDATE charges SET cents = cents - ? WHERE order_id = ?`, o.PriceCents*o.Quantity, o.ID)
					return err
				})
			},
		},
		"inventory": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o := order(in)
				return nil, c.effect(ctx, o.ID, "inventory", "do", func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `UPDATE stock SET qty = qty - ? WHERE item = ?`, o.Quantity, o.Item)
					return err
				})
			},
			Undo: func(ctx context.Context, in *chain.Input) error {
				o := order(in)
				return c.effect(ctx, o.ID, "inventory", "undo", func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `UPDATE stock SET qty = qty + ? WHERE item = ?`, o.Quantity, o.Item)
					return err
				})
			},
		},
		"shipping": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o := order(in)
				if o.Destination == "Atlantis" {
					return nil, chain.Fail("shipping.NoRoute", fmt.Errorf("no carrier delivers to %s", o.Destination))
				}
				return nil, c.effect(ctx, o.ID, "shipping", "do", func(tx *sql.Tx) error { return nil })
			},
		},
	}
}

// countingStore counts the duplicates the idempotency store found done.
type countingStore struct {
	*sqlite.IdempotencyStore
	n *atomic.Int64
}

func (s *countingStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	cl, err := s.IdempotencyStore.Begin(ctx, key, lease)
	if err == nil && cl.Status == crossbus.ClaimCompleted {
		s.n.Add(1)
	}
	return cl, err
}

var soakItems = []string{"lamp", "chair", "desk", "rug", "shelf"}

const soakStock = 1_000_000

// TestSoakUnderChaos is the soak test; see the comment at the top.
func TestSoakUnderChaos(t *testing.T) {
	if !canKillSelf {
		t.Skipf("the soak test kills consumer processes with SIGKILL, which %s does not have", runtime.GOOS)
	}
	if testing.Short() {
		t.Skip("the soak test takes about 20s; skipped with -short")
	}
	size := soakSizeFromEnv()
	ctx := context.Background()
	dir := t.TempDir()
	start := time.Now()

	db, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{})
	require.NoError(t, err)
	_, err = db.SQL().ExecContext(ctx, `
		CREATE TABLE ledger_effects (event_id TEXT NOT NULL, seller TEXT NOT NULL, delta INTEGER NOT NULL);
		CREATE TABLE balances (seller TEXT PRIMARY KEY, cents INTEGER NOT NULL);
		CREATE TABLE step_effects (order_id TEXT NOT NULL, step TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (order_id, step, kind));
		CREATE TABLE charges (order_id TEXT PRIMARY KEY, cents INTEGER NOT NULL);
		CREATE TABLE stock (item TEXT PRIMARY KEY, qty INTEGER NOT NULL)`)
	require.NoError(t, err)
	for _, it := range soakItems {
		_, err = db.SQL().ExecContext(ctx, `INSERT INTO stock (item, qty) VALUES (?, ?)`, it, soakStock)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	// Publish everything once, through the chaos provider, to
	// subscriptions created first; retry what it failed.
	np, err := nats.New(ctx, nats.Options{EmbeddedDir: filepath.Join(dir, "bus"), AutoCreate: true, AckWait: soakLease})
	require.NoError(t, err)
	require.NoError(t, np.CreateSubscription(ctx, soakLedger, soakLedgerSub, false))
	require.NoError(t, np.CreateSubscription(ctx, soakOrders, soakIntakeSub, false))
	pub := chaos.New(np, soakChaos(1))
	bus, err := crossbus.New(pub)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(42, 7))
	expected := map[string]int{}
	poison := map[string]bool{}
	var ledger []*crossbus.Event
	for i := 0; i < size.Ledger; i++ {
		seller := fmt.Sprintf("s%02d", rng.IntN(size.Sellers))
		typ, cents := creditedType, 1000+rng.IntN(9000)
		if i%2 == 1 {
			typ, cents = feeType, 100+rng.IntN(900)
		}
		if rng.IntN(200) == 0 {
			cents = -cents // poison: dead-lettered, never applied
		}
		e := ledgerEvent(typ, seller, Entry{Cents: cents, Order: fmt.Sprintf("o-%d", i)})
		e.SetID(fmt.Sprintf("ledger-%06d", i))
		crossbus.SetPartitionKey(e, "seller-"+seller)
		switch {
		case cents < 0:
			poison[e.ID()] = true
		case typ == feeType:
			expected[seller] -= cents
		default:
			expected[seller] += cents
		}
		ledger = append(ledger, e)
	}
	var orders []PlacedOrder
	var orderEvents []*crossbus.Event
	for i := 0; i < size.Orders; i++ {
		o := PlacedOrder{ID: fmt.Sprintf("order-%05d", i), Item: soakItems[rng.IntN(len(soakItems))], Quantity: 1 + rng.IntN(3),
			PriceCents: 500 + rng.IntN(5000), Destination: "Berlin"}
		if i%7 == 3 {
			o.Destination = "Atlantis" // compensated
		}
		e := crossbus.NewEvent("com.example.marketplace.order.placed", "/soak")
		e.SetID("placed-" + o.ID)
		require.NoError(t, crossbus.SetData(&e, o))
		crossbus.SetPartitionKey(&e, o.ID)
		orders = append(orders, o)
		orderEvents = append(orderEvents, &e)
	}
	retried := publishAll(t, bus, soakLedger, ledger) + publishAll(t, bus, soakOrders, orderEvents)
	publishFaults := pub.Faults()
	require.NoError(t, bus.Close(ctx))
	require.EqualValues(t, publishFaults.PublishErrors, retried, "every injected publish error was retried")

	plan := soakPlan{LedgerApplied: len(ledger) - len(poison), Size: size}
	for _, o := range orders {
		plan.Orders = append(plan.Orders, o.ID)
	}
	raw, err := json.Marshal(plan)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plan.json"), raw, 0o600))
	published := time.Since(start)

	// The consumers: killed ones, then the one that finishes.
	var kills []string
	for i := 0; i <= len(size.Kills); i++ {
		p := "finish"
		if i < len(size.Kills) {
			p = fmt.Sprintf("kill:%d", size.Kills[i])
		}
		childStart := time.Now()
		out, err := runSoakChild(dir, p, size.ChildMax)
		t.Logf("soak: consumer %d (%s) ran %v", i+1, p, time.Since(childStart).Round(time.Millisecond))
		if os.Getenv("CROSSBUS_SOAK_PROGRESS") != "" {
			raw, _ := os.ReadFile(filepath.Join(dir, "progress.log"))
			t.Logf("progress:\n%s", raw)
		}
		if p == "finish" {
			require.NoError(t, err, "the last consumer failed\n%s%s", out, soakLogTail(dir))
			continue
		}
		require.True(t, killedBySIGKILL(err), "consumer %d (%s) should have died by SIGKILL; got %v\n%s%s", i+1, p, err, out, soakLogTail(dir))
		kills = append(kills, p)
	}

	// Exact end state.
	db, err = sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{})
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.SQL().QueryContext(ctx, `SELECT event_id, COUNT(*) FROM ledger_effects GROUP BY event_id`)
	require.NoError(t, err)
	applied := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		applied[id] = n
	}
	require.NoError(t, rows.Err())
	var twice []string
	for id, n := range applied {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	sort.Strings(twice)
	assert.Empty(t, twice, "ledger entries applied more than once")
	for _, e := range ledger {
		if poison[e.ID()] {
			assert.Zero(t, applied[e.ID()], "poison entry %s was applied", e.ID())
		} else {
			assert.Equal(t, 1, applied[e.ID()], "entry %s applied once", e.ID())
		}
	}
	balances := map[string]int{}
	rows, err = db.SQL().QueryContext(ctx, `SELECT seller, cents FROM balances`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		var c int
		require.NoError(t, rows.Scan(&s, &c))
		balances[s] = c
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, expected, balances, "every seller's balance is exact")

	// Chains: completed, or compensated when shipping had no route; each
	// effect once; stock and charges exact.
	wantStock := map[string]int{}
	for _, it := range soakItems {
		wantStock[it] = soakStock
	}
	wantCharges := map[string]int{}
	completed, compensated := 0, 0
	for _, o := range orders {
		inst, err := db.Chains().Load(ctx, o.ID)
		require.NoError(t, err, "chain %s", o.ID)
		var effects []string
		erows, err := db.SQL().QueryContext(ctx, `SELECT step || ':' || kind FROM step_effects WHERE order_id = ? ORDER BY step, kind`, o.ID)
		require.NoError(t, err)
		for erows.Next() {
			var s string
			require.NoError(t, erows.Scan(&s))
			effects = append(effects, s)
		}
		require.NoError(t, erows.Err())
		if o.Destination == "Atlantis" {
			compensated++
			assert.Equal(t, chain.StatusCompensated, inst.Status, "order %s", o.ID)
			assert.Equal(t, []string{"inventory:do", "inventory:undo", "payment:do", "payment:undo"}, effects, "order %s", o.ID)
			wantCharges[o.ID] = 0
			continue
		}
		completed++
		assert.Equal(t, chain.StatusCompleted, inst.Status, "order %s", o.ID)
		assert.Equal(t, []string{"inventory:do", "payment:do", "shipping:do"}, effects, "order %s", o.ID)
		wantStock[o.Item] -= o.Quantity
		wantCharges[o.ID] = o.PriceCents * o.Quantity
	}
	gotStock, gotCharges := map[string]int{}, map[string]int{}
	require.NoError(t, scanPairs(ctx, db.SQL(), `SELECT item, qty FROM stock`, gotStock))
	require.NoError(t, scanPairs(ctx, db.SQL(), `SELECT order_id, cents FROM charges`, gotCharges))
	assert.Equal(t, wantStock, gotStock, "stock is exact")
	assert.Equal(t, wantCharges, gotCharges, "charges are exact (compensated orders refunded)")

	// Dead letters: exactly the poison entries, each with its reason.
	np, err = nats.New(ctx, nats.Options{EmbeddedDir: filepath.Join(dir, "bus"), AutoCreate: true, AckWait: soakLease})
	require.NoError(t, err)
	bus, err = crossbus.New(np)
	require.NoError(t, err)
	defer bus.Close(ctx)
	dead := readDeadLetters(t, bus, soakLedger, soakLedgerSub, len(poison))
	for id, info := range dead {
		assert.True(t, poison[id], "dead letter %s is not a planned poison entry (%s)", id, info.Reason)
		assert.Contains(t, info.Reason, "poison ledger entry")
	}
	for id := range poison {
		assert.Contains(t, dead, id, "poison entry dead-lettered")
	}

	// Figures.
	var total soakStats
	statFiles, _ := filepath.Glob(filepath.Join(dir, "stats-*.json"))
	for _, f := range statFiles {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var s soakStats
		require.NoError(t, json.Unmarshal(raw, &s))
		total.add(s)
	}
	total.Faults = addFaults(total.Faults, publishFaults)
	assert.Positive(t, total.Suppressed, "redeliveries of applied entries were suppressed")
	assert.Positive(t, total.Faults.Duplicates)
	assert.Positive(t, total.Faults.Reorders)
	t.Logf("soak: %d ledger events (%d sellers, %d poison), %d order chains (%d completed, %d compensated); publish took %v, total %v",
		len(ledger), size.Sellers, len(poison), len(orders), completed, compensated, published.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("soak: consumer runs %d, killed with SIGKILL mid-batch %d (%s)", len(size.Kills)+1, len(kills), strings.Join(kills, ", "))
	t.Logf("soak: faults injected: %v", total.Faults)
	t.Logf("soak: ledger handler runs %d (%d failed by injection), at attempt > 1: %d; duplicates suppressed by the inbox %d; "+
		"chain step runs %d (%d failed by injection, %d found applied already)",
		total.LedgerRuns, total.LedgerFailures, total.Redeliveries, total.Suppressed, total.StepRuns, total.StepFailures, total.StepRepeats)
	t.Logf("soak: lost 0, applied twice %d, dead letters %d (all %d planned poison entries)", len(twice), len(dead), len(poison))
}

func (s *soakStats) add(o soakStats) {
	s.Faults = addFaults(s.Faults, o.Faults)
	s.LedgerRuns += o.LedgerRuns
	s.LedgerFailures += o.LedgerFailures
	s.Redeliveries += o.Redeliveries
	s.Suppressed += o.Suppressed
	s.StepRuns += o.StepRuns
	s.StepFailures += o.StepFailures
	s.StepRepeats += o.StepRepeats
}

func addFaults(a, b chaos.Faults) chaos.Faults {
	return chaos.Faults{PublishErrors: a.PublishErrors + b.PublishErrors, PublishPermanent: a.PublishPermanent + b.PublishPermanent,
		LostAcks: a.LostAcks + b.LostAcks, Duplicates: a.Duplicates + b.Duplicates, Reorders: a.Reorders + b.Reorders,
		Delays: a.Delays + b.Delays, ReceiveErrors: a.ReceiveErrors + b.ReceiveErrors, SlowSettles: a.SlowSettles + b.SlowSettles,
		Disconnects: a.Disconnects + b.Disconnects, LostSettlements: a.LostSettlements + b.LostSettlements}
}

// publishAll publishes events in batches, publishing again the ones that
// failed until none does; it returns how many publishes were retried.
func publishAll(t *testing.T, bus *crossbus.Bus, topic string, events []*crossbus.Event) int {
	t.Helper()
	retried := 0
	for i := 0; i < len(events); i += 100 {
		batch := events[i:min(i+100, len(events))]
		for len(batch) > 0 {
			err := bus.Publish(context.Background(), topic, batch...)
			if err == nil {
				break
			}
			var pe *crossbus.PublishError
			require.ErrorAs(t, err, &pe)
			again := make([]*crossbus.Event, 0, len(pe.Failed))
			for _, f := range pe.Failed {
				require.ErrorIs(t, f.Err, chaos.ErrInjected)
				require.False(t, crossbus.IsPermanent(f.Err))
				again = append(again, batch[f.Index])
			}
			retried += len(again)
			batch = again
		}
	}
	return retried
}

// readDeadLetters reads a subscription's dead letters until want have come
// and no more come for a second.
func readDeadLetters(t *testing.T, bus *crossbus.Bus, topic, sub string, want int) map[string]crossbus.DeadLetterInfo {
	t.Helper()
	recv, err := bus.DeadLetters(context.Background(), topic, sub)
	require.NoError(t, err)
	defer recv.Close(context.Background())
	out := map[string]crossbus.DeadLetterInfo{}
	buf := make([]driver.Delivery, 64)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Second
		if len(out) < want {
			wait = 5 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		n, err := recv.Receive(ctx, buf)
		cancel()
		if n == 0 {
			if len(out) >= want || !errors.Is(err, context.DeadlineExceeded) {
				break
			}
			continue
		}
		for _, d := range buf[:n] {
			info, _ := crossbus.DeadLetterInfoOf(d.Event())
			out[d.Event().ID()] = info
			require.NoError(t, d.Ack(context.Background()))
		}
	}
	return out
}

func scanPairs(ctx context.Context, db *sql.DB, query string, into map[string]int) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v int
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		into[k] = v
	}
	return rows.Err()
}

// runSoakChild runs the test binary as a consumer with plan.
func runSoakChild(dir, plan string, max time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSoakConsumer$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), soakDirEnv+"="+dir, soakPlanEnv+"="+plan)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func soakLogTail(dir string) string {
	if dumps, _ := filepath.Glob(filepath.Join(dir, "goroutines-*.txt")); len(dumps) > 0 {
		keep := filepath.Join(os.TempDir(), "crossbus-soak-"+filepath.Base(dumps[0]))
		if raw, err := os.ReadFile(dumps[0]); err == nil && os.WriteFile(keep, raw, 0o600) == nil {
			return "\ngoroutines of the stuck consumer: " + keep + soakLogTail2(dir)
		}
	}
	return soakLogTail2(dir)
}

func soakLogTail2(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "consumer.log"))
	if err != nil || len(raw) == 0 {
		return ""
	}
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return "\nconsumer log (tail):\n" + string(raw)
}

// dumpGoroutines writes every goroutine's stack to the directory, for a
// consumer that did not get where it should.
func dumpGoroutines(dir string) {
	f, err := os.Create(filepath.Join(dir, "goroutines-"+strconv.Itoa(os.Getpid())+".txt"))
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("goroutine").WriteTo(f, 2)
}
