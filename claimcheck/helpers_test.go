package claimcheck_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/providers/memory"
)

// rig is a memory provider with two buses over it: bus, with the claim
// check, and raw, without, to see what went over the wire.
type rig struct {
	p     *memory.Provider
	bus   *crossbus.Bus
	raw   *crossbus.Bus
	store *claimcheck.Store
}

func newRig(t *testing.T, store *claimcheck.Store, threshold int, opts memory.Options) *rig {
	t.Helper()
	opts.AutoCreate = true
	p := memory.New(opts)
	bus, err := crossbus.New(p, claimcheck.Option(store, threshold))
	require.NoError(t, err)
	raw, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = raw.Close(context.Background())
		_ = bus.Close(context.Background())
	})
	return &rig{p: p, bus: bus, raw: raw, store: store}
}

func memStore(t *testing.T, uri string) *claimcheck.Store {
	t.Helper()
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = b.Close() })
	s, err := claimcheck.New(b, uri, nil)
	require.NoError(t, err)
	return s
}

// collector records the events a handler saw.
type collector struct {
	mu     sync.Mutex
	events []*crossbus.Event
	got    chan *crossbus.Event
}

func newCollector() *collector { return &collector{got: make(chan *crossbus.Event, 100)} }

func (c *collector) handler(fail func(e *crossbus.Event) error) crossbus.Handler {
	return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if fail != nil {
			if err := fail(e); err != nil {
				return err
			}
		}
		c.mu.Lock()
		cp := e.Clone()
		c.events = append(c.events, &cp)
		c.mu.Unlock()
		c.got <- e
		return nil
	})
}

func (c *collector) next(t *testing.T) *crossbus.Event {
	t.Helper()
	select {
	case e := <-c.got:
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event delivered within 20s")
		return nil
	}
}

func (c *collector) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-c.got:
		t.Fatalf("unexpected event %s delivered", e.ID())
	case <-time.After(d):
	}
}

func subscribe(t *testing.T, b *crossbus.Bus, topic, sub string, h crossbus.Handler, opts ...crossbus.RouteOption) {
	t.Helper()
	s, err := b.Subscribe(context.Background(), topic, sub, h, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func quick(attempts int) crossbus.RouteOption {
	return crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: attempts, InitialBackoff: 5 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond, Multiplier: 2})
}

// payload is n bytes of a repeating, position-dependent pattern (so a
// shifted or truncated copy does not compare equal).
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ byte(i>>8) ^ seed
	}
	return b
}

func bigEvent(t *testing.T, id string, data []byte) *crossbus.Event {
	t.Helper()
	e := crossbus.NewEvent("com.example.invoice.attached", "https://shop.example.com")
	e.SetID(id)
	e.SetDataContentType("application/pdf")
	require.NoError(t, crossbus.SetData(&e, data))
	return &e
}

func objects(t *testing.T, b *blob.Bucket) []*blob.ListObject {
	t.Helper()
	var out []*blob.ListObject
	it := b.List(nil)
	for {
		o, err := it.Next(context.Background())
		if err != nil {
			require.True(t, errors.Is(err, io.EOF), "list: %v", err)
			return out
		}
		out = append(out, o)
	}
}

func sameBytes(t *testing.T, want, got []byte) {
	t.Helper()
	if !bytes.Equal(want, got) {
		t.Fatalf("data differs: want %d bytes, got %d", len(want), len(got))
	}
}

var _ = assert.Equal
