package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	"github.com/crossbus/crossbus/providers/nats"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// The transactional inbox crash test: a parent publishes crashEvents events
// to a durable bus (embedded NATS JetStream) once, then runs the test binary
// again and again as a consumer on the same bus directory and database
// file. Each consumer but the last kills itself with SIGKILL at a chosen
// point; the last runs until every event is handled and every delivery
// settled. No event may have more than one effect.
const (
	inboxCrashEnv     = "CROSSBUS_INBOX_CRASH_DIR"  // the test's directory (bus, database, stats)
	inboxCrashPlanEnv = "CROSSBUS_INBOX_CRASH_PLAN" // what the consumer does; see crashPlan
	inboxCrashModeEnv = "CROSSBUS_INBOX_CRASH_MODE" // "tx": transactional route; "plain": the control
	crashEvents       = 2000
	crashTopic        = "payments"
	crashSub          = "ledger"
	crashLease        = time.Second // idempotency lease and JetStream ack wait
	crashChildMax     = 40 * time.Second
)

// crashPlans are the consumer runs before the last: "ack:N" kills the
// process at the N-th acknowledgement of a delivery whose handler committed
// in this process, before the acknowledgement is sent (committed, not
// acknowledged); "handler:N" kills it inside the N-th handler run, after
// the handler's writes and before the commit (in the control, whose handler
// commits on its own, after that commit and before the route completes the
// key).
var crashPlans = []string{
	"ack:150", "handler:120", "ack:240", "handler:200", "ack:90",
	"handler:160", "ack:1", "handler:1", "ack:130", "handler:70",
}

// crashPlan is a parsed plan: at most one of the counts is set; neither
// means run to the end.
type crashPlan struct {
	killAtAck, killInHandler int64
}

func parseCrashPlan(s string) (crashPlan, error) {
	if s == "finish" {
		return crashPlan{}, nil
	}
	kind, num, _ := strings.Cut(s, ":")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 {
		return crashPlan{}, fmt.Errorf("bad crash plan %q", s)
	}
	switch kind {
	case "ack":
		return crashPlan{killAtAck: n}, nil
	case "handler":
		return crashPlan{killInHandler: n}, nil
	}
	return crashPlan{}, fmt.Errorf("bad crash plan %q", s)
}

// crashChild is one consumer process. It notes what it sees in the stats
// file, one line per write (O_APPEND, no buffering, so the lines survive
// SIGKILL): "v" a delivery received, "h" a handler run, "r" a
// redelivery the broker flagged (attempt > 1), "d" a duplicate
// found completed and acknowledged without running the handler, "p" a
// delivery put back because another run held its key, "A <id>" or "H <id>"
// the event at which the process killed itself.
type crashChild struct {
	plan      crashPlan
	stats     *os.File
	runs      atomic.Int64
	acks      atomic.Int64 // acknowledgements of deliveries committed here
	committed sync.Map     // *crossbus.Event of a delivery whose handler returned nil
}

func (c *crashChild) note(line string) { _, _ = c.stats.WriteString(line + "\n") }

// beforeAck runs just before a delivery is acknowledged.
func (c *crashChild) beforeAck(e *crossbus.Event) {
	if _, ok := c.committed.Load(e); !ok {
		return
	}
	if c.acks.Add(1) == c.plan.killAtAck {
		c.note("A " + e.ID())
		killSelf()
	}
}

// crashProvider wraps the NATS provider so the child sees every delivery:
// it counts redeliveries and can die just before an acknowledgement.
type crashProvider struct {
	driver.Provider
	c *crashChild
}

func (p *crashProvider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	r, err := p.Provider.Subscribe(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &crashReceiver{Receiver: r, c: p.c}, nil
}

type crashReceiver struct {
	driver.Receiver
	c *crashChild
}

func (r *crashReceiver) Capabilities() driver.Capabilities {
	return r.Receiver.(driver.ReceiverCapabilities).Capabilities()
}

func (r *crashReceiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	n, err := r.Receiver.Receive(ctx, buf)
	for i := range buf[:n] {
		r.c.note("v")
		if buf[i].Attempt() > 1 {
			r.c.note("r")
		}
		buf[i] = &crashDelivery{Delivery: buf[i], c: r.c}
	}
	return n, err
}

type crashDelivery struct {
	driver.Delivery
	c *crashChild
}

func (d *crashDelivery) Ack(ctx context.Context) error {
	d.c.beforeAck(d.Event())
	return d.Delivery.Ack(ctx)
}

func (d *crashDelivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	return d.Delivery.(driver.LeaseExtender).ExtendLease(ctx, lease)
}

// crashStore notes what Begin finds.
type crashStore struct {
	*sqlite.IdempotencyStore
	c *crashChild
}

func (s *crashStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	cl, err := s.IdempotencyStore.Begin(ctx, key, lease)
	switch {
	case err != nil:
	case cl.Status == crossbus.ClaimCompleted:
		s.c.note("d")
	case cl.Status == crossbus.ClaimInProgress:
		s.c.note("p")
	}
	return cl, err
}

// TestInboxCrashHelper is not a test on its own: TestTransactionalInboxCrash
// runs the test binary again with inboxCrashEnv set, and this function then
// consumes as the plan in inboxCrashPlanEnv says.
func TestInboxCrashHelper(t *testing.T) {
	dir := os.Getenv(inboxCrashEnv)
	if dir == "" {
		t.Skip("consumer process of TestTransactionalInboxCrash; runs only when " + inboxCrashEnv + " is set")
	}
	plan, err := parseCrashPlan(os.Getenv(inboxCrashPlanEnv))
	require.NoError(t, err)
	ctx := context.Background()
	stats, err := os.OpenFile(filepath.Join(dir, "stats"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer stats.Close()
	c := &crashChild{plan: plan, stats: stats}

	db, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{})
	require.NoError(t, err)
	defer db.Close()
	np, err := nats.New(ctx, nats.Options{EmbeddedDir: filepath.Join(dir, "bus"), Prefetch: 64})
	require.NoError(t, err)
	logs, err := os.OpenFile(filepath.Join(dir, "consumer.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer logs.Close()
	bus, err := crossbus.New(&crashProvider{Provider: np, c: c},
		crossbus.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	require.NoError(t, err)

	// The handler's effect: a row per run and a balance. The transactional
	// route writes them through the inbox transaction; the control commits
	// them on its own, before the route completes the key.
	transactional := os.Getenv(inboxCrashModeEnv) == "tx"
	handler := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		c.note("h")
		write := func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id) VALUES (?)`, e.ID()); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = 'acct'`)
			return err
		}
		if transactional {
			tx, ok := sqlite.TxFrom(ctx)
			if !ok {
				return crossbus.Permanent(errors.New("no inbox transaction"))
			}
			if err := write(tx); err != nil {
				return err
			}
		} else if err := db.WriteTx(ctx, write); err != nil {
			return err
		}
		if c.runs.Add(1) == plan.killInHandler {
			c.note("H " + e.ID())
			killSelf()
		}
		c.committed.Store(e, true)
		return nil
	})
	sub, err := bus.Subscribe(ctx, crashTopic, crashSub, handler,
		crossbus.WithIdempotency(&crashStore{IdempotencyStore: db.Idempotency(), c: c},
			crossbus.IdempotencyOptions{Transactional: transactional, Lease: crashLease, TTL: time.Hour}),
		crossbus.WithConcurrency(4),
		crossbus.WithAckDeadline(crashLease),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 10, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Multiplier: 2}))
	require.NoError(t, err)

	deadline := time.Now().Add(crashChildMax - 5*time.Second)
	if plan != (crashPlan{}) {
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("plan %s: the kill point was never reached (%d handler runs, %d acknowledgements)", os.Getenv(inboxCrashPlanEnv), c.runs.Load(), c.acks.Load())
	}

	// The last consumer: wait until every event is applied and the
	// subscription has nothing pending or unacknowledged (every redelivery
	// of a handled event was seen and settled).
	var js jetstream.JetStream
	require.True(t, bus.As(&js))
	stream, err := js.StreamNameBySubject(ctx, crashTopic)
	require.NoError(t, err)
	cons, err := js.Consumer(ctx, stream, crashSub)
	require.NoError(t, err)
	for {
		var applied int
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT COUNT(DISTINCT event_id) FROM effects`).Scan(&applied))
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		if applied == crashEvents && info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d events applied, %d deliveries unacknowledged, %d pending",
				crashChildMax, applied, crashEvents, info.NumAckPending, info.NumPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, sub.Close(ctx))
	require.NoError(t, bus.Close(ctx))
}

// TestTransactionalInboxCrash proves the crash guarantee of the
// transactional inbox end to end: consumers killed with SIGKILL after the
// commit and before the acknowledgement, or inside the handler before the
// commit, leave every one of crashEvents events applied exactly once.
func TestTransactionalInboxCrash(t *testing.T) {
	if !canKillSelf {
		t.Skipf("the crash test kills consumer processes with SIGKILL, which %s does not have", runtime.GOOS)
	}
	start := time.Now()
	r := runCrashScenario(t, true, crashPlans)
	for _, step := range r.steps {
		assert.Empty(t, step.doubled, "%s: events with more than one effect", step.name)
		switch step.kill {
		case "A":
			assert.Equal(t, 1, step.killedEffects, "%s: killed after the commit of %s, so its effect is there", step.name, step.killedID)
		case "H":
			assert.Equal(t, 0, step.killedEffects, "%s: killed inside the handler of %s, so its writes rolled back", step.name, step.killedID)
		}
	}
	assert.Equal(t, crashEvents, r.effects, "every event applied exactly once")
	assert.Equal(t, crashEvents, r.balance)
	assert.Equal(t, crashEvents, r.applied)
	assert.Equal(t, len(crashPlans), r.ackKills+r.handlerKills)
	assert.Positive(t, r.stats["d"], "the crashes made the bus redeliver handled events, and the inbox suppressed them")
	t.Logf("events %d, consumer runs %d, kills %d (%d after commit before ack, %d in handler before commit), "+
		"deliveries %d (redeliveries %d, %d of them flagged by the broker), duplicates suppressed %d, "+
		"deferred while held %d, handler runs %d (%d rolled back), took %v",
		crashEvents, len(crashPlans)+1, r.ackKills+r.handlerKills, r.ackKills, r.handlerKills,
		r.stats["v"], r.stats["v"]-crashEvents, r.stats["r"], r.stats["d"],
		r.stats["p"], r.stats["h"], r.stats["h"]-crashEvents, time.Since(start).Round(time.Millisecond))
}

// TestNonTransactionalInboxCrashControl is the control of
// TestTransactionalInboxCrash: the same run with a plain idempotent route,
// whose handler commits its writes on its own before the route completes
// the key. A kill between the two leaves the effect without the record, and
// the redelivery applies it again: the window the transactional inbox
// closes is real.
func TestNonTransactionalInboxCrashControl(t *testing.T) {
	if !canKillSelf {
		t.Skipf("the crash test kills consumer processes with SIGKILL, which %s does not have", runtime.GOOS)
	}
	r := runCrashScenario(t, false, []string{"handler:100"})
	require.Len(t, r.steps, 2)
	killed := r.steps[0].killedID
	doubled := r.steps[1].doubled
	assert.Equal(t, 1, r.steps[0].killedEffects, "the handler's own commit survived the kill")
	// Handlers running on other workers at the kill may have been caught
	// in the same window; each such event was applied twice too.
	assert.Contains(t, doubled, killed, "the killed event was applied twice")
	assert.Equal(t, crashEvents, r.applied)
	assert.Equal(t, crashEvents+len(doubled), r.effects, "each doubled event was applied exactly twice")
	t.Logf("without the transactional inbox: one kill inside the handler, %d effects for %d events (applied twice: %v)", r.effects, crashEvents, doubled)
}

// crashStep is what the parent found after one consumer run.
type crashStep struct {
	name          string
	doubled       []string // events with more than one effect
	kill          string   // "A" (after commit) or "H" (in handler); "" for the last run
	killedID      string
	killedEffects int // effects of the event the consumer died at
}

type crashResult struct {
	steps                  []crashStep
	effects, balance       int // effect rows and the balance they moved
	applied                int // events with an effect
	ackKills, handlerKills int
	stats                  map[string]int
}

// runCrashScenario publishes crashEvents events, runs a consumer for each
// plan and a last one that finishes, and reports what the database held
// after each run.
func runCrashScenario(t *testing.T, transactional bool, plans []string) crashResult {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "state.db")

	db, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	require.NoError(t, err)
	// No unique constraint: a double effect shows as a second row.
	_, err = db.SQL().ExecContext(ctx, `CREATE TABLE effects (event_id TEXT NOT NULL);
		CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL);
		INSERT INTO accounts VALUES ('acct', 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	// Publish every event once, to a subscription created first.
	np, err := nats.New(ctx, nats.Options{EmbeddedDir: filepath.Join(dir, "bus"), AutoCreate: true, AckWait: crashLease})
	require.NoError(t, err)
	require.NoError(t, np.CreateSubscription(ctx, crashTopic, crashSub, false))
	bus, err := crossbus.New(np)
	require.NoError(t, err)
	evs := make([]*crossbus.Event, crashEvents)
	for i := range evs {
		e := crossbus.NewEvent("payment.received", "/crash-test")
		e.SetID(fmt.Sprintf("ev-%04d", i))
		evs[i] = &e
	}
	require.NoError(t, bus.Publish(ctx, crashTopic, evs...))
	require.NoError(t, bus.Close(ctx))

	var r crashResult
	mode := "plain"
	if transactional {
		mode = "tx"
	}
	for i, plan := range append(append([]string{}, plans...), "finish") {
		step := crashStep{name: fmt.Sprintf("after consumer %d (%s)", i+1, plan)}
		out, err := runCrashChild(dir, mode, plan)
		last := plan == "finish"
		switch {
		case last && err != nil:
			t.Fatalf("the last consumer failed: %v\n%s%s", err, out, logTail(dir))
		case !last && !killedBySIGKILL(err):
			t.Fatalf("consumer %d (%s) should have died by SIGKILL; got %v\n%s%s", i+1, plan, err, out, logTail(dir))
		}
		db, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
		require.NoError(t, err)
		rows, err := db.SQL().QueryContext(ctx, `SELECT event_id FROM effects GROUP BY event_id HAVING COUNT(*) > 1 ORDER BY event_id`)
		require.NoError(t, err)
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			step.doubled = append(step.doubled, id)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT event_id) FROM effects`).Scan(&r.effects, &r.applied))
		require.NoError(t, db.SQL().QueryRowContext(ctx, `SELECT balance FROM accounts`).Scan(&r.balance))
		require.Equal(t, r.effects, r.balance, "%s: the balance moved with the effect rows", step.name)
		if !last {
			step.kill, step.killedID = lastKill(t, dir)
			step.killedEffects, err = countRows(ctx, db, `SELECT COUNT(*) FROM effects WHERE event_id = ?`, step.killedID)
			require.NoError(t, err)
			switch step.kill {
			case "A":
				r.ackKills++
			case "H":
				r.handlerKills++
			}
			t.Logf("consumer %d (%s): killed at %s; %d events applied so far", i+1, plan, step.killedID, r.applied)
		}
		require.NoError(t, db.Close())
		r.steps = append(r.steps, step)
	}
	r.stats = readCrashStats(t, dir)
	return r
}

// runCrashChild runs one consumer process and returns its output.
func runCrashChild(dir, mode, plan string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), crashChildMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestInboxCrashHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), inboxCrashEnv+"="+dir, inboxCrashModeEnv+"="+mode, inboxCrashPlanEnv+"="+plan)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// lastKill returns the kill line the last consumer wrote ("A" or "H", and
// the event id).
func lastKill(t *testing.T, dir string) (kind, id string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "stats"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			kind, id = k, v
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, id, "the consumer noted where it killed itself")
	return kind, id
}

// readCrashStats counts the stats file's one-letter lines.
func readCrashStats(t *testing.T, dir string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "stats"))
	require.NoError(t, err)
	st := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if len(line) == 1 {
			st[line]++
		}
	}
	return st
}

// logTail returns the end of the consumers' warning log, for a failure
// message.
func logTail(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "consumer.log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return "\nconsumer log (end):\n" + string(b)
}
