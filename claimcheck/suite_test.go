package claimcheck_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/providers/memory"
)

// runStoreSuite proves the claim check on one bucket (memory, a directory,
// or an object-storage emulator): every test gets a fresh Store over an
// empty bucket from newStore.
func runStoreSuite(t *testing.T, newStore func(t *testing.T) *claimcheck.Store) {
	t.Run("FiveMegabytesRoundTrip", func(t *testing.T) {
		store := newStore(t)
		r := newRig(t, store, 64<<10, memory.Options{MaxEventBytes: 256 << 10})
		full, wire := newCollector(), newCollector()
		subscribe(t, r.bus, "invoices", "billing", full.handler(nil))
		subscribe(t, r.raw, "invoices", "audit", wire.handler(nil))

		data := payload(5<<20, 1)
		e := bigEvent(t, "inv-1", data)
		crossbus.SetPartitionKey(e, "customer-7")
		require.NoError(t, r.bus.Publish(context.Background(), "invoices", e))
		sameBytes(t, data, e.Data()) // the caller's event is not changed
		assert.Empty(t, claimcheck.Ref(e))

		got := full.next(t)
		sameBytes(t, data, got.Data())
		assert.Equal(t, "inv-1", got.ID())
		assert.Equal(t, "application/pdf", got.DataContentType())
		assert.Equal(t, "customer-7", crossbus.PartitionKey(got))
		ref := claimcheck.Ref(got)
		assert.Equal(t, store.Ref(store.Key(data)), ref)
		assert.True(t, strings.HasPrefix(ref, store.URI()+"/claimcheck/sha256/"), ref)

		w := wire.next(t)
		assert.Empty(t, w.Data(), "the event on the wire carries the reference, not the data")
		assert.Equal(t, ref, claimcheck.Ref(w))
		assert.Equal(t, "application/pdf", w.DataContentType())

		objs := objects(t, store.Bucket())
		require.Len(t, objs, 1)
		assert.Equal(t, store.Key(data), objs[0].Key)
		assert.EqualValues(t, len(data), objs[0].Size)
	})

	t.Run("SmallDataStaysInline", func(t *testing.T) {
		store := newStore(t)
		r := newRig(t, store, 1024, memory.Options{})
		wire := newCollector()
		subscribe(t, r.raw, "invoices", "audit", wire.handler(nil))
		require.NoError(t, r.bus.Publish(context.Background(), "invoices", bigEvent(t, "small", payload(1024, 2))))
		w := wire.next(t)
		assert.Len(t, w.Data(), 1024)
		assert.Empty(t, claimcheck.Ref(w))
		assert.Empty(t, objects(t, store.Bucket()))
	})

	t.Run("SameDataWrittenOnce", func(t *testing.T) {
		store := newStore(t)
		ctx := context.Background()
		data := payload(100<<10, 3)
		ref1, err := store.Put(ctx, data, "application/octet-stream")
		require.NoError(t, err)
		before := objects(t, store.Bucket())
		require.Len(t, before, 1)
		time.Sleep(1100 * time.Millisecond) // object times have one-second resolution on some stores
		ref2, err := store.Put(ctx, data, "application/octet-stream")
		require.NoError(t, err)
		assert.Equal(t, ref1, ref2)
		after := objects(t, store.Bucket())
		require.Len(t, after, 1)
		assert.Equal(t, before[0].ModTime, after[0].ModTime, "an object written within Reuse is not written again")
		got, err := store.Get(ctx, ref1)
		require.NoError(t, err)
		sameBytes(t, data, got)
	})

	t.Run("MissingObjectIsRetriedThenDeadLettered", func(t *testing.T) {
		store := newStore(t)
		r := newRig(t, store, 1, memory.Options{})
		c := newCollector()
		subscribe(t, r.bus, "invoices", "billing", c.handler(nil), quick(3))
		e := crossbus.NewEvent("com.example.invoice.attached", "https://shop.example.com")
		e.SetExtension(claimcheck.ExtDataRef, store.Ref(store.Key([]byte("never written"))))
		require.NoError(t, r.raw.Publish(context.Background(), "invoices", &e))
		var dead []crossbus.Event
		require.Eventually(t, func() bool {
			dead, _ = r.p.DeadLetters("invoices", "billing")
			return len(dead) == 1
		}, 20*time.Second, 10*time.Millisecond)
		info, ok := crossbus.DeadLetterInfoOf(&dead[0])
		require.True(t, ok)
		assert.Equal(t, 3, info.Attempts)
		assert.Contains(t, info.Reason, "not found in bucket "+store.URI())
		assert.Equal(t, claimcheck.Ref(&e), claimcheck.Ref(&dead[0]), "the dead letter keeps the reference")
		c.none(t, 50*time.Millisecond)
	})

	t.Run("CorruptedDataIsDeadLetteredAtOnce", func(t *testing.T) {
		store := newStore(t)
		r := newRig(t, store, 1, memory.Options{})
		c := newCollector()
		subscribe(t, r.bus, "invoices", "billing", c.handler(nil), quick(5))
		key := store.Key([]byte("the real data"))
		require.NoError(t, store.Bucket().WriteAll(context.Background(), key, []byte("something else"), nil))
		e := crossbus.NewEvent("com.example.invoice.attached", "https://shop.example.com")
		e.SetExtension(claimcheck.ExtDataRef, store.Ref(key))
		require.NoError(t, r.raw.Publish(context.Background(), "invoices", &e))
		var dead []crossbus.Event
		require.Eventually(t, func() bool {
			dead, _ = r.p.DeadLetters("invoices", "billing")
			return len(dead) == 1
		}, 20*time.Second, 10*time.Millisecond)
		info, _ := crossbus.DeadLetterInfoOf(&dead[0])
		assert.Equal(t, 1, info.Attempts)
		assert.Contains(t, info.Reason, "corrupted")
	})

	t.Run("Sweep", func(t *testing.T) {
		store := newStore(t)
		ctx := context.Background()
		for i := range 3 {
			_, err := store.Put(ctx, []byte(fmt.Sprintf("object %d", i)), "text/plain")
			require.NoError(t, err)
		}
		require.NoError(t, store.Bucket().WriteAll(ctx, "other/keep", []byte("not ours"), nil))
		n, err := store.Sweep(ctx, time.Hour)
		require.NoError(t, err)
		assert.Zero(t, n, "young objects stay")
		time.Sleep(1100 * time.Millisecond)
		n, err = store.Sweep(ctx, time.Second)
		require.NoError(t, err)
		assert.Equal(t, 3, n)
		objs := objects(t, store.Bucket())
		require.Len(t, objs, 1, "objects outside the prefix stay")
		assert.Equal(t, "other/keep", objs[0].Key)
	})
}

func TestStoreMemory(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) *claimcheck.Store { return memStore(t, "mem://claims") })
}

func TestStoreFile(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) *claimcheck.Store {
		s, err := claimcheck.Open(context.Background(), "file://"+t.TempDir()+"?metadata=skip", nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

var _ = errors.Is
