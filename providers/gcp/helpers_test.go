package gcp_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp"
)

const project = "crossbus-test"

// newServer starts an in-process Pub/Sub fake (pstest) for one test.
func newServer(t testing.TB, opts ...pstest.ServerReactorOption) *pstest.Server {
	t.Helper()
	srv := pstest.NewServer(opts...)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// newRawClient returns a Pub/Sub client of the fake, as the package
// documentation of pstest shows.
func newRawClient(t testing.TB, srv *pstest.Server) *pubsub.Client {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	c, err := pubsub.NewClient(context.Background(), project, option.WithGRPCConn(conn))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(); _ = conn.Close() })
	return c
}

// newProvider returns a provider that dials the fake itself, as a separate
// process would.
func newProvider(t testing.TB, srv *pstest.Server, mod ...func(*gcp.Options)) *gcp.Provider {
	t.Helper()
	o := gcp.Options{Project: project, Endpoint: srv.Addr, Insecure: true}
	for _, m := range mod {
		m(&o)
	}
	p, err := gcp.New(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func newBus(t testing.TB, p driver.Provider) *crossbus.Bus {
	t.Helper()
	b, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// waitNoGoroutines fails the test if goroutines running this package's code
// are still alive after the deadline: everything a provider starts must end
// with its Close.
func waitNoGoroutines(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "crossbus/providers/gcp.") && !strings.Contains(g, "_test.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) of the provider still running:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, within, 10*time.Millisecond, "timed out after %v waiting for %s", within, what)
}
