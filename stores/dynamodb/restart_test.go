package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/dynamodb"
	"github.com/crossbus/crossbus/stores/storetest"
)

// privateDynalite is a dynalite of the test's own on LevelDB in a
// directory, which it may kill (SIGKILL) and restart on the same data.
type privateDynalite struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateDynalite(t *testing.T) *privateDynalite {
	t.Helper()
	bin := os.Getenv("CROSSBUS_DYNALITE")
	if bin == "" {
		t.Skip("CROSSBUS_DYNALITE is not set (scripts/deps/dynalite.sh installs dynalite and sets it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	d := &privateDynalite{t: t, bin: bin, port: port, dir: t.TempDir()}
	d.start()
	t.Cleanup(d.kill)
	return d
}

func (d *privateDynalite) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", d.port) }

func (d *privateDynalite) start() {
	d.t.Helper()
	_, cmd, err := startDynaliteOn(d.bin, d.port, d.dir)
	require.NoError(d.t, err)
	d.cmd = cmd
}

// startDynalite starts dynalite on a free port, on LevelDB in dir (in
// memory when dir is ""), and waits until it accepts connections.
func startDynalite(bin, dir string) (int, *exec.Cmd, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, nil, err
	}
	return startDynaliteOn(bin, port, dir)
}

func startDynaliteOn(bin string, port int, dir string) (int, *exec.Cmd, error) {
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"}
	if dir != "" {
		args = append(args, "--path", dir)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			_ = c.Close()
			return port, cmd, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, nil, fmt.Errorf("dynalite on port %d did not start: %w", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *privateDynalite) kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
		d.cmd = nil
	}
}

// The server is killed while appenders and an idempotent consumer work,
// and restarted on its data: calls in the outage fail with errors that
// name the operation and wrap the cause; afterwards the stores work again,
// Recover publishes what the outage left, every acknowledged append is in
// ReadAll exactly once, an append that failed is there whole or not at
// all, and the global log has no gap.
func TestServerKilledAndRestarted(t *testing.T) {
	srv := startPrivateDynalite(t)
	ctx := context.Background()
	c := newClient(srv.endpoint())
	tables := dynamodb.DefaultTables("restart")
	require.NoError(t, dynamodb.CreateTables(ctx, c, dynamodb.CreateTablesOptions{Tables: tables, NoTimeToLive: true}))
	events, err := dynamodb.NewEventStore(ctx, c, tables.Events)
	require.NoError(t, err)
	idem, err := dynamodb.NewIdempotencyStore(ctx, c, tables.Idempotency)
	require.NoError(t, err)

	type batch struct {
		ids   [2]string
		acked bool
	}
	var mu sync.Mutex
	var batches []batch
	completed := map[string]bool{}
	var errs []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("acct-%d", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e1, e2 := storetest.NewTestEvent("deposited", nil), storetest.NewTestEvent("deposited", nil)
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := events.Append(cctx, stream, sourcing.Any, e1, e2)
				cancel()
				mu.Lock()
				batches = append(batches, batch{ids: [2]string{e1.ID(), e2.ID()}, acked: err == nil})
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("event-%d", i)
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			claim, err := idem.Begin(cctx, key, time.Hour)
			if err == nil && claim.Status == crossbus.ClaimNew {
				if err = idem.Complete(cctx, key, claim.Token, time.Hour); err == nil {
					mu.Lock()
					completed[key] = true
					mu.Unlock()
				}
			}
			cancel()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	time.Sleep(700 * time.Millisecond)
	srv.kill()
	time.Sleep(1500 * time.Millisecond)
	srv.start()
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()

	require.NotEmpty(t, errs, "calls failed while the server was down")
	for _, err := range errs {
		msg := err.Error()
		assert.True(t, strings.HasPrefix(msg, `dynamodb: append to "acct-`) || strings.HasPrefix(msg, "dynamodb: idempotency "), "the error names the operation: %v", err)
		var ne net.Error
		assert.True(t, errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded), "the error wraps the cause: %v", err)
	}

	n, err := events.Recover(ctx)
	require.NoError(t, err)
	recs, err := sourcing.Collect(events.ReadAll(ctx, 1))
	require.NoError(t, err)
	seen := map[string]int{}
	versions := map[string]uint64{}
	for i, r := range recs {
		require.Equal(t, uint64(i+1), r.Position, "the global log is gap-free")
		versions[r.Stream]++
		require.Equal(t, versions[r.Stream], r.Version)
		seen[r.Event.ID()]++
	}
	acked, whole, absent := 0, 0, 0
	for _, b := range batches {
		a, c := seen[b.ids[0]], seen[b.ids[1]]
		require.Equal(t, a, c, "a batch is recorded whole or not at all")
		require.LessOrEqual(t, a, 1, "no event twice")
		switch {
		case b.acked:
			require.Equal(t, 1, a, "an acknowledged append is in the log")
			acked++
		case a == 1:
			whole++
		default:
			absent++
		}
	}
	for stream, v := range versions {
		sv, err := events.StreamVersion(ctx, stream)
		require.NoError(t, err)
		assert.Equal(t, v, sv, "%s: its version is what the log holds", stream)
	}
	for key := range completed {
		claim, err := idem.Begin(ctx, key, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimCompleted, claim.Status, "%s: an acknowledged Complete survived", key)
	}
	t.Logf("%d appends acknowledged, %d failed but recorded whole, %d failed and absent; Recover published %d; %d completed keys; %d errors in the outage",
		acked, whole, absent, n, len(completed), len(errs))
}
