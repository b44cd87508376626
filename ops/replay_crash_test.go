package ops_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/ops"
	_ "github.com/crossbus/crossbus/providers/nats"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// The replay crash test: a parent archives replayEvents events (half of
// them of the type the replay's pattern selects) on a durable bus
// (embedded NATS JetStream) with the archive in SQLite, then runs the test
// binary again and again as the replayer on the same directory. Each run but
// the last is killed with SIGKILL mid-way: by itself right after saving
// progress, or by the parent at an arbitrary moment. The last run finishes
// the replay. The target subscription must then hold every selected event
// exactly once.
const (
	replayCrashEnv  = "CROSSBUS_REPLAY_CRASH_DIR"
	replayCrashPlan = "CROSSBUS_REPLAY_CRASH_PLAN" // "self:N" kills at the N-th publish of the run; "run": no self-kill
	replayEvents    = 400
	replayID        = "replay-crash"
	replaySource    = "orders"
	replayTarget    = "orders-replayed"
	replayCheck     = "check"
	replayRate      = 40.0
)

func openCrashWorld(t testing.TB, dir string, archive bool) (*crossbus.Bus, *sqlite.DB, *ops.Archive) {
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"), sqlite.Options{})
	require.NoError(t, err)
	a, err := ops.NewArchive(db.Archive(), ops.ArchiveOptions{Topics: []string{replaySource}})
	require.NoError(t, err)
	var opts []crossbus.BusOption
	if archive {
		opts = append(opts, a.BusOption())
	}
	bus, err := crossbus.Open(context.Background(), "nats+embedded://"+filepath.Join(dir, "bus"), opts...)
	require.NoError(t, err)
	return bus, db, a
}

func TestReplayResumesAfterKillWithoutLossOrDuplicates(t *testing.T) {
	if dir := os.Getenv(replayCrashEnv); dir != "" {
		replayChild(t, dir, os.Getenv(replayCrashPlan))
		return
	}
	if !canKill {
		t.Skip("this platform cannot SIGKILL a process")
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	ctx := context.Background()
	bus, db, _ := openCrashWorld(t, dir, true)
	// The target's subscription exists before the replay publishes.
	recv, err := bus.Provider().Subscribe(ctx, driver.SubscriptionSpec{Topic: replayTarget, Name: replayCheck})
	require.NoError(t, err)
	require.NoError(t, recv.Close(ctx))
	want := map[string]bool{}
	for i := range replayEvents {
		typ := "com.example.order.placed"
		if i%2 == 1 {
			typ = "com.example.order.viewed"
		}
		e := crossbus.NewEvent(typ, "/shop")
		e.SetExtension("n", int32(i))
		require.NoError(t, bus.Publish(ctx, replaySource, &e))
		if i%2 == 0 {
			want[e.ID()] = true
		}
	}
	require.NoError(t, bus.Close(ctx))
	require.NoError(t, db.Close())

	exe, err := os.Executable()
	require.NoError(t, err)
	run := func(plan string, killAfter time.Duration) error {
		cmd := exec.Command(exe, "-test.run=^TestReplayResumesAfterKillWithoutLossOrDuplicates$", "-test.v")
		cmd.Env = append(os.Environ(), replayCrashEnv+"="+dir, replayCrashPlan+"="+plan)
		out, err := os.Create(filepath.Join(dir, "child-"+strconv.FormatInt(time.Now().UnixNano(), 10)+".log"))
		require.NoError(t, err)
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		if killAfter > 0 {
			timer := time.AfterFunc(killAfter, func() { killProcess(cmd.Process) })
			defer timer.Stop()
		}
		return cmd.Wait()
	}
	// Killed by itself at chosen publishes, and by the parent at moments
	// unrelated to the replay's steps (after the child's start-up).
	for _, plan := range []struct {
		plan string
		kill time.Duration
	}{{"self:20", 0}, {"run", 1200 * time.Millisecond}, {"self:1", 0}, {"run", 1600 * time.Millisecond}, {"self:35", 0}} {
		err := run(plan.plan, plan.kill)
		require.True(t, killedBySIGKILL(err), "run %s ended by %v, not SIGKILL (see logs in %s)", plan.plan, err, dir)
	}
	require.NoError(t, run("run", 0), "the last run finishes the replay")

	bus, db, _ = openCrashWorld(t, dir, false)
	defer db.Close()
	defer bus.Close(ctx)
	st, err := db.Archive().LoadReplay(ctx, replayID)
	require.NoError(t, err)
	assert.Equal(t, ops.ReplayDone, st.Status)
	assert.Equal(t, int64(replayEvents), st.Total)

	recv, err = bus.Provider().Subscribe(ctx, driver.SubscriptionSpec{Topic: replayTarget, Name: replayCheck})
	require.NoError(t, err)
	defer recv.Close(ctx)
	got := map[string]int{}
	buf := make([]driver.Delivery, 100)
	for {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		n, err := recv.Receive(rctx, buf)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		for _, d := range buf[:n] {
			e := d.Event()
			got[e.ID()]++
			assert.Equal(t, replayID, crossbus.ExtensionString(e, ops.ExtReplayed))
			require.NoError(t, d.Ack(ctx))
		}
	}
	dups, missing := 0, 0
	for id := range want {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	assert.Zero(t, missing, "events lost")
	assert.Zero(t, dups, "events duplicated")
	assert.Len(t, got, len(want), "only the selected events reach the target")
}

func replayChild(t *testing.T, dir, plan string) {
	ctx := context.Background()
	bus, db, a := openCrashWorld(t, dir, true)
	defer db.Close()
	defer bus.Close(ctx)
	killAt := -1
	if n, ok := cutPrefix(plan, "self:"); ok {
		killAt, _ = strconv.Atoi(n)
	}
	rp, err := ops.NewReplayer(bus, a.Store())
	require.NoError(t, err)
	published := 0
	progress := func(st ops.ReplayState) {
		if st.Status != ops.ReplayRunning || st.Published == 0 {
			return
		}
		published++
		if published == killAt {
			killSelf()
		}
	}
	req := ops.ReplayRequest{ID: replayID, Topic: replaySource, Target: replayTarget, Rate: replayRate,
		From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Pattern: `{"type":["com.example.order.placed"]}`}
	st, err := rp.Start(ctx, req, progress)
	require.NoError(t, err)
	fmt.Printf("replay %s: %s, %d published\n", st.ID, st.Status, st.Published)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}
