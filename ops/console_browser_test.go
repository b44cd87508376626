package ops_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
)

const consoleToken = "console-test-token-0123"

// consoleService runs a mem:// service whose "sms" route dead-letters until
// healed, with an archive and the admin handler.
func consoleService(t *testing.T) (url string, healed *atomic.Bool) {
	t.Helper()
	ctx := context.Background()
	healed = new(atomic.Bool)
	store := ops.NewMemoryArchiveStore()
	a, err := ops.NewArchive(store, ops.ArchiveOptions{Topics: []string{"signups", "orders"}})
	require.NoError(t, err)
	bus := memBus(t, a.BusOption())
	r, err := crossbus.NewRouter(bus)
	require.NoError(t, err)
	ok := func(context.Context, *crossbus.Event) error { return nil }
	require.NoError(t, r.Handle("signups", "sms", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		if healed.Load() {
			return nil
		}
		if e.Type() == "com.example.signup.business" {
			return crossbus.Permanent(fmt.Errorf("no sms plan for account %s", e.Subject()))
		}
		return crossbus.Permanent(fmt.Errorf("sms gateway 10.0.3.%d:8443 timed out after %dms", len(e.Subject()), 200+len(e.Subject())))
	}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3})))
	require.NoError(t, r.Handle("signups", "email", crossbus.HandlerFunc(ok), crossbus.WithConcurrency(4)))
	require.NoError(t, r.Handle("signups", "analytics", crossbus.HandlerFunc(ok), crossbus.WithRateLimit(50, 10)))
	require.NoError(t, r.Handle("orders", "billing", crossbus.HandlerFunc(ok), crossbus.WithOrdering(),
		crossbus.WithFilter(crossbus.TypeIs("com.example.order.placed"))))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	<-r.Ready()
	h, err := ops.NewHandler(ops.HandlerConfig{Bus: bus, Router: r, Archive: a, Token: consoleToken, Service: "marketplace",
		Read: ops.Options{Wait: time.Second, Idle: 200 * time.Millisecond}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close(); stop(); <-done })
	for i := range 5 {
		e := crossbus.NewEvent("com.example.signup", "/signup")
		e.SetSubject(strings.Repeat("u", i+1))
		require.NoError(t, bus.Publish(ctx, "signups", &e))
	}
	for i := range 2 {
		e := crossbus.NewEvent("com.example.signup.business", "/signup")
		e.SetSubject(fmt.Sprintf("acct-%d", 1000+i))
		require.NoError(t, bus.Publish(ctx, "signups", &e))
	}
	for range 4 {
		e := crossbus.NewEvent("com.example.order.placed", "/shop")
		require.NoError(t, bus.Publish(ctx, "orders", &e))
	}
	require.Eventually(t, func() bool { return r.Counters(ctx)[0].DeadLettered == 7 }, 10*time.Second, 20*time.Millisecond)
	return srv.URL, healed
}

// browser starts headless Chromium, or skips saying why.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CROSSBUS_CHROMIUM")
	if path == "" {
		t.Skip("CROSSBUS_CHROMIUM is not set: no browser for the console tests (scripts/deps/chromium.sh installs Debian's chromium; make test runs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// screenshot saves a full-page PNG into $CROSSBUS_SCREENSHOT_DIR when set
// (the README's pictures in docs/ are made so).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("CROSSBUS_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}

func TestConsoleShowsTopologyCountersAndRedrivesAGroup(t *testing.T) {
	ctx := browser(t)
	url, healed := consoleService(t)

	// Load: the topology diagram, a row of counters per route, and the
	// dead letters of the first route grouped by cause.
	err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/#token="+consoleToken),
		chromedp.WaitVisible(`#diagram svg g.route`),
		chromedp.WaitVisible(`#groups tbody tr[data-group]`),
	)
	require.NoError(t, err)
	routes := evalInt(t, ctx, `document.querySelectorAll("#diagram svg g.route").length`)
	counterRows := evalInt(t, ctx, `document.querySelectorAll("#counters tbody tr[data-route]").length`)
	groupRows := evalInt(t, ctx, `document.querySelectorAll("#groups tbody tr[data-group]").length`)
	firstCount := text(t, ctx, `#groups tbody tr[data-group] td.count`)
	require.Equal(t, 4, routes, "one box per route in the diagram")
	require.Equal(t, 4, counterRows, "one counter row per route")
	require.Equal(t, 2, groupRows, "two causes")
	require.Equal(t, "5", firstCount, "the larger group first")
	cause := text(t, ctx, `#groups tbody tr[data-group] td.cause`)
	require.Equal(t, "permanent: sms gateway <addr> timed out after <duration>", strings.TrimSpace(cause))
	screenshot(t, ctx, "console.png")

	// Redrive the larger group: confirm in the dialog, watch it go.
	healed.Store(true)
	err = chromedp.Do(ctx,
		chromedp.Click(`#groups tbody tr[data-group] button`),
		chromedp.WaitVisible(`#confirm[open]`),
	)
	require.NoError(t, err)
	screenshot(t, ctx, "console-redrive-confirm.png")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(`#confirm-ok`)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := evalInt(t, ctx, `document.querySelectorAll("#groups tbody tr[data-group]").length`)
		status := evalString(t, ctx, `document.querySelector("#status").textContent`)
		if rows == 1 && strings.Contains(status, "Redrove 5") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the redriven group did not go: %d groups, status %q", rows, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	left := text(t, ctx, `#groups tbody tr[data-group] td.count`)
	require.Equal(t, "2", left, "the other group stays")
	// The route's counters show the redriven events handled.
	require.NoError(t, waitText(ctx, `#counters tbody tr[data-route="signups/sms"] td:nth-child(4)`, "5"))
	screenshot(t, ctx, "console-after-redrive.png")
}

func TestConsoleRunsAReplayWithProgress(t *testing.T) {
	ctx := browser(t)
	url, _ := consoleService(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/#token="+consoleToken),
		chromedp.WaitVisible(`#r-topic`),
		chromedp.Query(`#r-topic option[value="orders"]`),
		chromedp.SetValue(`#r-topic`, "orders"),
		chromedp.SetValue(`#r-subscription`, "billing"),
		chromedp.SetValue(`#r-rate`, "20"),
		chromedp.Click(`#replay-form button[type=submit]`),
		chromedp.WaitVisible(`#replay-progress`),
	)
	require.NoError(t, err)
	require.NoError(t, waitText(ctx, `#r-count`, "4 published, 4 of 4 read — done"))
	require.NoError(t, chromedp.Do(ctx, chromedp.ScrollIntoView(`#replay`)))
	screenshot(t, ctx, "console-replay.png")
}

func waitText(ctx context.Context, sel, want string) error {
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		var err error
		if got, err = chromedp.Run(ctx, chromedp.Text(sel)); err != nil {
			return err
		}
		if strings.Contains(got, want) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("waiting for " + sel + " to show " + want + ", it shows " + got)
}

func evalInt(t *testing.T, ctx context.Context, expr string) int {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
	require.NoError(t, err, expr)
	return v
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	require.NoError(t, err, expr)
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(sel))
	require.NoError(t, err, sel)
	return strings.TrimSpace(v)
}
