package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
)

// cluster is a private PostgreSQL server for a test that stops and starts
// it, so the shared test server stays up for everyone else.
type cluster struct {
	bin, dir string
	port     int
	asUser   []string // runuser prefix when the test runs as root
}

// newCluster initialises and starts a private cluster, or skips the test
// when the server's programs are not installed.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	serverURL(t) // skip with the suite when no server is configured
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		t.Skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed; scripts/deps/postgres.sh installs them")
	}
	sort.Strings(matches)
	c := &cluster{bin: filepath.Dir(matches[len(matches)-1])}
	dir, err := os.MkdirTemp("", "crossbus-pg-restart-")
	require.NoError(t, err)
	c.dir = dir
	t.Cleanup(func() {
		_ = c.run("pg_ctl", "-D", c.data(), "stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	require.NoError(t, os.Chmod(dir, 0o777))
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.port = l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	require.NoError(t, c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"))
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\nfull_page_writes = off\n", c.port, dir)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(conf)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	c.start(t)
	return c
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", c.port)
}

func (c *cluster) run(prog string, args ...string) error {
	argv := append(append(append([]string{}, c.asUser...), filepath.Join(c.bin, prog)), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", prog, err, out)
	}
	return nil
}

func (c *cluster) start(t *testing.T) {
	t.Helper()
	require.NoError(t, c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"))
}

// crash stops the server the way a crash does: no checkpoint, connections
// cut; the restart recovers from the write-ahead log.
func (c *cluster) crash(t *testing.T) {
	t.Helper()
	require.NoError(t, c.run("pg_ctl", "-D", c.data(), "-w", "stop", "-m", "immediate"))
}

// appendLog is what one writer knows about its appends.
type appendLog struct {
	ok, failed [][]string // event ids of appends that returned nil / an error
	errs       []error
}

// TestServerCrashMidRun crashes the server while writers append, claim
// idempotency keys and mark outbox messages, then restarts it. Calls made
// while it is down fail with errors that name the operation and wrap the
// driver's cause; after the restart the pool reconnects, and the store is
// consistent: every append that returned nil is there, an append that
// failed is there whole or not at all, positions are gap-free and each
// stream's versions rise without gaps.
func TestServerCrashMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and crashes a server of its own")
	}
	c := newCluster(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, c.url(), postgres.Options{Outbox: sourcing.ToTopic("ledger"), MaxConns: 8})
	require.NoError(t, err)
	defer db.Close()

	stop := make(chan struct{})
	const writers = 4
	logs := make([]appendLog, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lg := &logs[w]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + i%7
				evs := make([]*crossbus.Event, n)
				ids := make([]string, n)
				for j := range evs {
					evs[j] = credit(i)
					evs[j].SetID(fmt.Sprintf("w%d-%d-%d", w, i, j))
					ids[j] = evs[j].ID()
				}
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := db.Events().Append(actx, fmt.Sprintf("stream-%d", (w+i)%3), sourcing.Any, evs...)
				cancel()
				if err != nil {
					lg.failed = append(lg.failed, ids)
					lg.errs = append(lg.errs, err)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				lg.ok = append(lg.ok, ids)
			}
		}()
	}
	var idemErrs []error
	var idemMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cl, err := db.Idempotency().Begin(ctx, fmt.Sprintf("k-%d", i), time.Minute)
			if err == nil {
				err = db.Idempotency().Complete(ctx, fmt.Sprintf("k-%d", i), cl.Token, time.Hour)
			}
			if err != nil {
				idemMu.Lock()
				idemErrs = append(idemErrs, err)
				idemMu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()

	time.Sleep(time.Second)
	c.crash(t)
	time.Sleep(1500 * time.Millisecond)
	c.start(t)
	// Writers succeed again once the pool has reconnected.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := db.Events().Append(ctx, "probe", sourcing.Any, credit(0))
		assert.NoError(c, err, "the store recovers after the restart")
	}, 20*time.Second, 100*time.Millisecond)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// Errors while the server was down name the operation and wrap the
	// driver's cause.
	var downErrs []error
	for _, lg := range logs {
		downErrs = append(downErrs, lg.errs...)
	}
	require.NotEmpty(t, downErrs, "appends failed while the server was down")
	for _, err := range downErrs {
		assert.True(t, strings.HasPrefix(err.Error(), `postgres: append to "stream-`), "names the operation: %v", err)
		assert.True(t, driverCause(err), "wraps the driver's error: %v (%T)", err, errors.Unwrap(err))
	}
	require.NotEmpty(t, idemErrs)
	for _, err := range idemErrs {
		assert.True(t, strings.HasPrefix(err.Error(), "postgres: idempotency "), "names the operation: %v", err)
	}

	// Consistency.
	recs, err := sourcing.Collect(db.Events().ReadAll(ctx, 1))
	require.NoError(t, err)
	have := map[string]sourcing.Record{}
	versions := map[string]uint64{}
	for i, r := range recs {
		require.Equal(t, uint64(i+1), r.Position, "positions are gap-free after the crash")
		require.Equal(t, versions[r.Stream]+1, r.Version, "stream %s has no version gap", r.Stream)
		versions[r.Stream] = r.Version
		have[r.Event.ID()] = r
	}
	okAppends, failedApplied, failedLost := 0, 0, 0
	for _, lg := range logs {
		for _, ids := range lg.ok {
			okAppends++
			first, ok := have[ids[0]]
			require.True(t, ok, "acknowledged append %v is there", ids)
			for j, id := range ids {
				r, ok := have[id]
				require.True(t, ok, "acknowledged event %s is there", id)
				require.Equal(t, first.Position+uint64(j), r.Position, "an append's events are contiguous")
			}
		}
		for _, ids := range lg.failed {
			present := 0
			for _, id := range ids {
				if _, ok := have[id]; ok {
					present++
				}
			}
			require.True(t, present == 0 || present == len(ids), "failed append %v is whole or absent, found %d of %d", ids, present, len(ids))
			if present > 0 {
				failedApplied++ // committed, but the acknowledgement was lost with the connection
			} else {
				failedLost++
			}
		}
	}
	pending, err := db.Events().PendingOutbox(ctx, 100000)
	require.NoError(t, err)
	assert.Len(t, pending, len(recs), "each recorded event has its outbox message, and no other exists")
	t.Logf("%d events, %d acknowledged appends, %d failed appends (%d committed before the connection broke, %d rolled back), %d idempotency errors",
		len(recs), okAppends, failedApplied+failedLost, failedApplied, failedLost, len(idemErrs))
}

// driverCause reports whether err wraps an error of the driver or the
// network below it (a connection cut mid-read surfaces as
// io.ErrUnexpectedEOF from the driver's reader).
func driverCause(err error) bool {
	var netErr net.Error
	var sqlState interface{ SQLState() string }
	var safe interface{ SafeToRetry() bool }
	return errors.As(err, &netErr) || errors.As(err, &sqlState) || errors.As(err, &safe) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded)
}
