package redis_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/stores/redis"
)

// privateServer is a redis-server of the test's own, which it may kill and
// restart: appendonly with an fsync per write, so what was acknowledged
// survives a kill.
type privateServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateServer(t *testing.T) *privateServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (scripts/deps/redis.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	s := &privateServer{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *privateServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *privateServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	require.NoError(s.t, s.cmd.Start())
	require.Eventually(s.t, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("PING\r\n"))
		buf := make([]byte, 64)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := c.Read(buf)
		return strings.HasPrefix(string(buf[:n]), "+PONG")
	}, 10*time.Second, 50*time.Millisecond, "redis-server on port %d answers", s.port)
}

// kill stops the server at once (SIGKILL), as a crash would.
func (s *privateServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// connectionError reports whether err is the kind of failure a vanished
// server causes, wrapped so that errors.Is and errors.As reach it.
func connectionError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// The server is killed while workers claim, complete and advance, and comes
// back: calls in the outage fail with errors that name the operation and
// wrap the connection's; afterwards the same store works again, and every
// record is whole: what was acknowledged is there, what failed is either
// done or not, never half-written.
func TestServerKilledAndRestarted(t *testing.T) {
	srv := startPrivateServer(t)
	ctx := context.Background()
	s, err := redis.Open(ctx, srv.url(), redis.Options{Prefix: "restart"})
	require.NoError(t, err)
	defer s.Close()
	idem, seqs := s.Idempotency(), s.Sequences()

	type outcome struct {
		token     string // "" when Begin failed
		completed bool   // Complete returned nil
	}
	const workers = 4
	var mu sync.Mutex
	outcomes := map[string]outcome{}
	var outageErrs []error
	lastAcked := make([]uint64, workers)
	lastTried := make([]uint64, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				var o outcome
				var errs []error
				c, err := idem.Begin(cctx, key, time.Hour)
				if err != nil {
					errs = append(errs, err)
				} else if c.Status == crossbus.ClaimNew {
					o.token = c.Token
					if err := idem.Complete(cctx, key, c.Token, time.Hour); err != nil {
						errs = append(errs, err)
					} else {
						o.completed = true
					}
				}
				seq := uint64(i)
				lastTried[w] = seq
				if _, err := seqs.Advance(cctx, fmt.Sprintf("seq-%d", w), seq); err != nil {
					errs = append(errs, err)
				} else {
					lastAcked[w] = seq
				}
				cancel()
				mu.Lock()
				outcomes[key] = o
				outageErrs = append(outageErrs, errs...)
				mu.Unlock()
				if len(errs) > 0 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	srv.kill()
	// Longer than go-redis's own retries, so that calls fail.
	time.Sleep(2 * time.Second)
	srv.start()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	failed := len(outageErrs)

	require.NotZero(t, failed, "calls failed while the server was down")
	for _, err := range outageErrs {
		msg := err.Error()
		named := strings.HasPrefix(msg, "redis: idempotency begin: ") || strings.HasPrefix(msg, "redis: idempotency complete: ") || strings.HasPrefix(msg, "redis: advance sequence: ")
		assert.True(t, named, "error names the operation: %v", err)
		assert.True(t, connectionError(err) || errors.Is(err, context.DeadlineExceeded), "error wraps the connection's failure: %v", err)
	}

	// The store works again after the restart: the last keys succeeded.
	c, err := idem.Begin(ctx, "after-restart", time.Minute)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c.Status)

	client := s.Client()
	completed, claimed, absent := 0, 0, 0
	for key, o := range outcomes {
		v, err := client.Get(ctx, "restart:idem:{"+key+"}").Result()
		switch {
		case err != nil:
			require.True(t, o.token == "" || !o.completed, "%s was completed but is gone: %v", key, err)
			absent++
		case v == "c":
			completed++
		default:
			require.True(t, strings.HasPrefix(v, "p:") && len(v) == 2+32, "%s holds %q", key, v)
			require.False(t, o.completed, "%s was completed but holds a claim", key)
			if o.token != "" {
				assert.Equal(t, "p:"+o.token, v, "%s holds its own claim", key)
			}
			claimed++
		}
		if o.completed {
			assert.Equal(t, "c", v, "%s: an acknowledged Complete survived the kill", key)
		}
	}
	t.Logf("%d keys: %d completed, %d claimed (outcome lost), %d absent; %d calls failed in the outage", len(outcomes), completed, claimed, absent, failed)
	for w := 0; w < workers; w++ {
		got, err := seqs.Last(ctx, fmt.Sprintf("seq-%d", w))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, got, lastAcked[w], "worker %d: an acknowledged advance survived", w)
		assert.LessOrEqual(t, got, lastTried[w])
	}
}
