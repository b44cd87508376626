package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
	_ "github.com/crossbus/crossbus/providers/memory"
	_ "github.com/crossbus/crossbus/providers/nats"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crossbus-cli-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "crossbus")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), "CROSSBUS_ADMIN_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

const token = "test-token-0123456789"

// service is a mem://-backed service with an admin endpoint: a route
// "sms" of topic "signups" that fails until healed, an "audit" route, and
// an archive of "signups".
type service struct {
	url    string
	healed chan struct{}
	mu     sync.Mutex
	audit  map[string]int
}

func startService(t *testing.T) *service {
	t.Helper()
	ctx := context.Background()
	store := ops.NewMemoryArchiveStore()
	a, err := ops.NewArchive(store, ops.ArchiveOptions{Topics: []string{"signups"}})
	require.NoError(t, err)
	bus, err := crossbus.Open(ctx, "mem://", a.BusOption())
	require.NoError(t, err)
	s := &service{healed: make(chan struct{}), audit: map[string]int{}}
	r, err := crossbus.NewRouter(bus)
	require.NoError(t, err)
	require.NoError(t, r.Handle("signups", "sms", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		select {
		case <-s.healed:
			return nil
		default:
			return crossbus.Permanent(fmt.Errorf("sms gateway refused number %s", crossbus.ExtensionString(e, "n")))
		}
	})))
	require.NoError(t, r.Handle("signups", "audit", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if crossbus.ExtensionString(e, ops.ExtReplayed) != "" {
			s.audit[e.ID()]++
		}
		return nil
	})))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	<-r.Ready()
	h, err := ops.NewHandler(ops.HandlerConfig{Bus: bus, Router: r, Archive: a, Token: token, Service: "signup-service",
		Read: ops.Options{Wait: time.Second, Idle: 200 * time.Millisecond}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		stop()
		<-done
		_ = bus.Close(ctx)
	})
	for i := range 3 {
		e := crossbus.NewEvent("com.example.signup", "/signup")
		e.SetExtension("n", fmt.Sprintf("+4479460%04d", i))
		require.NoError(t, bus.Publish(ctx, "signups", &e))
	}
	require.Eventually(t, func() bool { return r.Counters(ctx)[0].DeadLettered == 3 }, 10*time.Second, 20*time.Millisecond)
	s.url = srv.URL
	return s
}

func TestCLIAgainstAnAdminEndpointOfAMemBus(t *testing.T) {
	s := startService(t)
	admin := []string{"--admin", s.url, "--token", token}

	res := runCLI(t, "", append(admin, "dlq", "groups", "--topic", "signups", "--subscription", "sms", "--output", "json")...)
	require.Equal(t, 0, res.code, res.stderr)
	var groups struct{ Groups []ops.Group }
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &groups))
	require.Len(t, groups.Groups, 1)
	assert.Equal(t, 3, groups.Groups[0].Count)
	assert.Equal(t, "permanent: sms gateway refused number <n>", groups.Groups[0].Cause)

	res = runCLI(t, "", append(admin, "dlq", "ls", "--topic", "signups", "--subscription", "sms", "--limit", "2")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "2 of 3 dead letters; next page: --page 2")

	res = runCLI(t, "", append(admin, "topology", "--format", "mermaid")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "t_signups --> s_signups__sms")
	res = runCLI(t, "", append(admin, "topology")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "TOPIC")
	assert.Contains(t, res.stdout, "native queue")

	// Bad input: each refused with its exit code, nothing moved.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--admin", s.url, "--token", "wrong-token-0000000", "dlq", "groups", "--topic", "signups", "--subscription", "sms"}, 4, "wrong"},
		{[]string{"--admin", s.url, "dlq", "groups", "--topic", "signups", "--subscription", "sms"}, 4, "Bearer"},
		{append(admin, "dlq", "groups", "--topic", "signups", "--subscription", "nosuchroute"), 3, "no route"},
		{append(admin, "dlq", "redrive", "--topic", "signups", "--subscription", "sms", "--all", "--rate", "0"), 2, "rate"},
		{append(admin, "dlq", "redrive", "--topic", "signups", "--subscription", "sms", "--group", "gnothere", "--rate", "5"), 3, "no group"},
		{append(admin, "replay", "--topic", "signups", "--from", "-1h", "--rate", "10"), 2, "into itself"},
		{append(admin, "replay", "--topic", "signups", "--from", "2030-01-02T00:00:00Z", "--to", "2030-01-01T00:00:00Z", "--subscription", "audit", "--rate", "10"), 2, "wrong way round"},
		{[]string{"dlq", "groups", "--topic", "signups", "--subscription", "sms"}, 2, "--bus URL or --admin URL"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	} {
		res := runCLI(t, "", c.args...)
		assert.Equal(t, c.code, res.code, "%v: %s", c.args, res.stderr)
		assert.Contains(t, res.stderr, c.want, "%v", c.args)
	}

	close(s.healed)
	res = runCLI(t, "", append(admin, "dlq", "redrive", "--topic", "signups", "--subscription", "sms", "--group", groups.Groups[0].ID, "--rate", "100", "--output", "json")...)
	require.Equal(t, 0, res.code, res.stderr)
	var rd ops.Result
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rd))
	assert.Equal(t, 3, rd.Done)
	res = runCLI(t, "", append(admin, "dlq", "groups", "--topic", "signups", "--subscription", "sms")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "no dead letters")

	res = runCLI(t, "", append(admin, "replay", "--topic", "signups", "--from", "-1h", "--subscription", "audit", "--rate", "100")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "done, 3 events published to signups (subscription audit only)")
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.audit) == 3 }, 5*time.Second, 20*time.Millisecond)
}

func TestCLIAgainstANATSBusSharedAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	busURL := "nats+embedded://" + filepath.Join(dir, "bus")
	ctx := context.Background()

	// A service run dead-letters two events, then stops.
	bus, err := crossbus.Open(ctx, busURL)
	require.NoError(t, err)
	r, err := crossbus.NewRouter(bus)
	require.NoError(t, err)
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		return crossbus.Permanent(fmt.Errorf("card %s declined", crossbus.ExtensionString(e, "card")))
	})))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	<-r.Ready()
	var ids []string
	for _, card := range []string{"4000-0001", "4000-0002"} {
		e := crossbus.NewEvent("com.example.order.placed", "/shop")
		e.SetExtension("card", card)
		require.NoError(t, bus.Publish(ctx, "orders", &e))
		ids = append(ids, e.ID())
	}
	require.Eventually(t, func() bool { return r.Counters(ctx)[0].DeadLettered == 2 }, 10*time.Second, 20*time.Millisecond)
	stop()
	<-done
	require.NoError(t, bus.Close(ctx))

	b := []string{"--bus", busURL}
	// The tail's subscription exists once it ran; then it sees what is published.
	res := runCLI(t, "", append(b, "tail", "--topic", "orders-redriven", "--subscription", "watch", "--timeout", "1s")...)
	require.Equal(t, 0, res.code, res.stderr)
	res = runCLI(t, "", append(b, "dlq", "redrive", "--topic", "orders", "--subscription", "billing", "--all", "--to", "orders-redriven", "--rate", "20", "--output", "json")...)
	require.Equal(t, 0, res.code, res.stderr)
	var rd ops.Result
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rd))
	assert.Equal(t, 2, rd.Done)
	res = runCLI(t, "", append(b, "--output", "json", "tail", "--topic", "orders-redriven", "--subscription", "watch", "--count", "2", "--timeout", "30s")...)
	require.Equal(t, 0, res.code, res.stderr)
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	var got []string
	for dec.More() {
		var e crossbus.Event
		require.NoError(t, dec.Decode(&e))
		got = append(got, e.ID())
		assert.Equal(t, "1", crossbus.ExtensionString(&e, ops.ExtRedriven))
		_, isDL := crossbus.DeadLetterInfoOf(&e)
		assert.False(t, isDL)
	}
	assert.ElementsMatch(t, ids, got, "the redriven events keep their ids")
	res = runCLI(t, "", append(b, "dlq", "groups", "--topic", "orders", "--subscription", "billing")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "no dead letters")

	res = runCLI(t, "", append(b, "publish", "--topic", "orders", "--type", "com.example.order.placed", "--data", `{"id":"o-9"}`, "--output", "json")...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, `"published": 1`)
	res = runCLI(t, `{"specversion":"1.0","id":"x1","source":"/cli","type":"t"}`, append(b, "publish", "--topic", "orders", "--file", "-")...)
	require.Equal(t, 0, res.code, res.stderr)
	res = runCLI(t, "", append(b, "publish", "--topic", "orders", "--type", "t", "--data", "{not json")...)
	assert.Equal(t, 2, res.code)
}

func TestCLIHelp(t *testing.T) {
	res := runCLI(t, "", "--help")
	assert.Equal(t, 0, res.code)
	assert.Contains(t, res.stdout, "Exit codes:")
	res = runCLI(t, "", "replay", "--help")
	assert.Equal(t, 0, res.code)
	assert.Contains(t, res.stdout, "Examples:")
}
