package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/build"
	"os"
	"os/exec"
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
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// The SDK's AMQP binding (protocol/amqp/v2 v2.15.2) needs go-amqp v0.17,
// and crossbus's Service Bus provider (through azservicebus) go-amqp v1:
// one build cannot hold both. The SDK's side is therefore the program in
// the amqpsdk directory, a module of its own; this test builds it with the
// go command and runs it against sbtest.

// amqpPeerLine is one event to or from the program (see amqpsdk/main.go).
type amqpPeerLine struct {
	Event *crossbus.Event   `json:"event,omitempty"`
	Types map[string]string `json:"types,omitempty"`
	Error string            `json:"error,omitempty"`
}

var (
	amqpPeerOnce sync.Once
	amqpPeerBin  string
	amqpPeerErr  error
)

// amqpPeer builds the program once per test binary. When the go command
// cannot build it (no toolchain, no module download), the test is skipped
// with the reason, except under CI, where that is a failure.
func amqpPeer(t *testing.T) string {
	t.Helper()
	amqpPeerOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			// The go command that runs the tests, when it is not on PATH.
			goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
		}
		dir, err := os.MkdirTemp("", "crossbus-amqpsdk")
		if err != nil {
			amqpPeerErr = err
			return
		}
		amqpPeerBin = filepath.Join(dir, "amqpsdk")
		cmd := exec.Command(goBin, "build", "-o", amqpPeerBin, ".")
		cmd.Dir = "amqpsdk"
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			amqpPeerErr = errors.New("go build in interop/amqpsdk: " + err.Error() + "\n" + string(out))
		}
	})
	if amqpPeerErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot build the CloudEvents SDK's AMQP side: %v", amqpPeerErr)
		}
		t.Skipf("skipped: cannot build the CloudEvents SDK's AMQP side: %v", amqpPeerErr)
	}
	return amqpPeerBin
}

func runAMQPPeer(t *testing.T, ctx context.Context, stdin []byte, args ...string) []amqpPeerLine {
	t.Helper()
	cmd := exec.CommandContext(ctx, amqpPeer(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "amqpsdk %s: %s", strings.Join(args, " "), stderr.String())
	var out []amqpPeerLine
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var l amqpPeerLine
		require.NoError(t, dec.Decode(&l))
		out = append(out, l)
	}
	return out
}

// amqpPeerInput writes the fixtures for the program, with their extension
// types.
func amqpPeerInput(t *testing.T, fs []fixture) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, f := range fs {
		l := amqpPeerLine{Event: &f.ev, Types: map[string]string{}}
		for name, v := range f.ev.Extensions() {
			l.Types[name] = typeName(v)
		}
		require.NoError(t, enc.Encode(l))
	}
	return b.Bytes()
}

func sortedTypes(m map[string]string) string {
	var out []string
	for name, typ := range m {
		out = append(out, name+":"+typ)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestAMQP(t *testing.T) {
	bin := amqpPeer(t)
	require.NotEmpty(t, bin)
	srv, err := sbtest.NewServer(sbtest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	queues := []string{"to-sdk-colon", "to-sdk-default", "from-sdk-binary", "from-sdk-structured"}
	for _, q := range queues {
		require.NoError(t, srv.CreateQueue(q, sbtest.EntityOptions{LockDuration: 10 * time.Second}))
	}
	addr := "amqp://" + srv.Addr()
	ctx := testCtx(t)
	provider := func(t *testing.T, prefix string) *servicebus.Provider {
		p, err := servicebus.New(ctx, servicebus.Options{ConnectionString: srv.ConnectionString(), Queues: queues, PropertyPrefix: prefix})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		return p
	}

	t.Run("crossbus to SDK, prefix cloudEvents:", func(t *testing.T) {
		p := provider(t, servicebus.PropertyPrefixColon)
		fs := fixtures(t)
		require.NoError(t, p.Publish(ctx, "to-sdk-colon", events(fs)))
		lines := runAMQPPeer(t, ctx, nil, "receive", addr, "to-sdk-colon", strconv.Itoa(len(fs)))
		require.Len(t, lines, len(fs))
		for _, l := range lines {
			require.Empty(t, l.Error)
			assertSame(t, l.Event, expect{limits: map[string]string{
				"delta": "go-amqp v0.17 decodes a small negative AMQP long wrongly (-7 arrives as 249)",
			}})
			if l.Event.ID() == "ext-1" {
				assert.Equal(t, "at:String blob:Binary count:Integer delta:Integer flag:Boolean link:String note:String ref:String tenant:String",
					sortedTypes(l.Types), "what the SDK holds: AMQP carries Boolean, Integer (long) and Binary natively")
				assert.Equal(t, "249", crossbus.ExtensionString(l.Event, "delta"))
			}
		}
	})

	t.Run("crossbus to SDK, default prefix cloudEvents_", func(t *testing.T) {
		// The SDK's AMQP binding reads only "cloudEvents:": with the
		// binding's preferred prefix it sees no CloudEvent.
		p := provider(t, "")
		attrs := fixtureByID(t, "attrs-1").ev
		require.NoError(t, p.Publish(ctx, "to-sdk-default", []*crossbus.Event{&attrs}))
		lines := runAMQPPeer(t, ctx, nil, "receive", addr, "to-sdk-default", "1")
		require.Len(t, lines, 1)
		assert.Contains(t, lines[0].Error, "unknown", "the SDK cannot tell the encoding")
	})

	for _, mode := range []string{"binary", "structured"} {
		t.Run("SDK "+mode+" to crossbus", func(t *testing.T) {
			p := provider(t, "")
			queue := "from-sdk-" + mode
			fs := fixtures(t)
			runAMQPPeer(t, ctx, amqpPeerInput(t, fs), "send", addr, queue, mode)
			r, err := p.Subscribe(ctx, driver.SubscriptionSpec{Topic: queue, Name: "reader"})
			require.NoError(t, err)
			defer r.Close(ctx)
			x := expect{types: structuredTypes}
			if mode == "binary" {
				// The SDK writes time and Timestamp values as AMQP timestamps
				// (milliseconds), URIs as strings, the other types natively.
				x = expect{timeUnit: time.Millisecond,
					types: "at:Timestamp blob:Binary count:Integer delta:Integer flag:Boolean link:String note:String ref:String tenant:String"}
			}
			for _, got := range crossbusReceive(t, ctx, r, len(fs)) {
				assertSame(t, got, x)
				if mode == "binary" && got.ID() == "attrs-1" {
					assert.False(t, got.Time().Equal(fixtureTime), "nanoseconds are lost on an AMQP timestamp")
				}
			}
		})
	}
}
