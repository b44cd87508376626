package interop_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if amqpPeerBin != "" {
		_ = os.RemoveAll(filepath.Dir(amqpPeerBin))
	}
	os.Exit(code)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// crossbusReceive reads n events from a crossbus receiver, acknowledging
// each; a delivery that did not decode fails the test with its reason.
func crossbusReceive(t *testing.T, ctx context.Context, r driver.Receiver, n int) []*crossbus.Event {
	t.Helper()
	var out []*crossbus.Event
	buf := make([]driver.Delivery, n)
	for len(out) < n {
		k, err := r.Receive(ctx, buf[:n-len(out)])
		require.NoError(t, err, "received %d of %d", len(out), n)
		for _, d := range buf[:k] {
			if u, ok := d.(driver.Undecodable); ok && u.DecodeError() != nil {
				t.Fatalf("crossbus could not decode a message: %v", u.DecodeError())
			}
			e := d.Event().Clone()
			out = append(out, &e)
			require.NoError(t, d.Ack(ctx))
		}
	}
	return out
}

// sdkReceive reads n events through an SDK protocol receiver, finishing
// each message as handled.
func sdkReceive(t *testing.T, ctx context.Context, r protocol.Receiver, n int) []*crossbus.Event {
	t.Helper()
	var out []*crossbus.Event
	for len(out) < n {
		m, err := r.Receive(ctx)
		require.NoError(t, err, "received %d of %d", len(out), n)
		e, err := binding.ToEvent(ctx, m)
		require.NoError(t, err, "the SDK could not read a message")
		require.NoError(t, m.Finish(nil))
		out = append(out, e)
	}
	return out
}

// events returns pointers to the fixtures' events, for Publish.
func events(fs []fixture) []*crossbus.Event {
	out := make([]*crossbus.Event, len(fs))
	for i := range fs {
		out[i] = &fs[i].ev
	}
	return out
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
