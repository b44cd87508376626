package claimcheck_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

func TestOverProviderLimitWithoutThreshold(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 0, memory.Options{MaxEventBytes: 4096})
	wire := newCollector()
	subscribe(t, r.raw, "invoices", "audit", wire.handler(nil))
	ctx := context.Background()
	require.NoError(t, r.bus.Publish(ctx, "invoices", bigEvent(t, "fits", payload(3000, 1)), bigEvent(t, "over", payload(5000, 2))))
	got := map[string]*crossbus.Event{}
	for range 2 {
		e := wire.next(t)
		got[e.ID()] = e
	}
	assert.Len(t, got["fits"].Data(), 3000)
	assert.Empty(t, claimcheck.Ref(got["fits"]))
	assert.Empty(t, got["over"].Data())
	assert.NotEmpty(t, claimcheck.Ref(got["over"]))

	// Without the claim check the same event is refused as too large.
	err := r.raw.Publish(ctx, "invoices", bigEvent(t, "over", payload(5000, 2)))
	require.ErrorIs(t, err, crossbus.ErrTooLarge)
}

func TestUnwritableBucketFailsThePublish(t *testing.T) {
	dir := t.TempDir()
	store, err := claimcheck.Open(context.Background(), "file://"+dir, nil)
	require.NoError(t, err)
	defer store.Close()
	// The directory is gone, and a file in its place stops it coming back.
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
	r := newRig(t, store, 1024, memory.Options{})
	wire := newCollector()
	subscribe(t, r.raw, "invoices", "audit", wire.handler(nil))

	err = r.bus.Publish(context.Background(), "invoices", bigEvent(t, "inv-1", payload(4096, 1)))
	require.Error(t, err)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	require.Len(t, pe.Failed, 1)
	assert.Equal(t, "inv-1", pe.Failed[0].EventID)
	assert.Contains(t, err.Error(), "bucket file://"+dir)
	wire.none(t, 100*time.Millisecond) // nothing was sent
}

func TestFilterSeesTheData(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 100, memory.Options{})
	c := newCollector()
	subscribe(t, r.bus, "orders", "big-eu", c.handler(nil),
		crossbus.WithFilter(crossbus.MustPattern(`{"data": {"region": ["eu"]}}`)))
	pad := strings.Repeat("x", 500)
	for _, region := range []string{"us", "eu"} {
		e := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com")
		e.SetID("order-" + region)
		require.NoError(t, crossbus.SetData(&e, map[string]string{"region": region, "lines": pad}))
		require.NoError(t, r.bus.Publish(context.Background(), "orders", &e))
	}
	got := c.next(t)
	assert.Equal(t, "order-eu", got.ID())
	c.none(t, 100*time.Millisecond)
	assert.Len(t, objects(t, store.Bucket()), 2)
}

func TestOtherReferences(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 1024, memory.Options{})
	c := newCollector()
	subscribe(t, r.bus, "docs", "reader", c.handler(nil))
	ctx := context.Background()

	// Another producer's reference to another bucket: left alone.
	foreign := crossbus.NewEvent("com.example.doc", "https://other.example.com")
	foreign.SetExtension(claimcheck.ExtDataRef, "https://cdn.example.com/docs/1.pdf")
	require.NoError(t, r.raw.Publish(ctx, "docs", &foreign))
	got := c.next(t)
	assert.Empty(t, got.Data())
	assert.Equal(t, "https://cdn.example.com/docs/1.pdf", claimcheck.Ref(got))

	// Another producer's object in this bucket, under a key of its own: fetched.
	require.NoError(t, store.Bucket().WriteAll(ctx, "uploads/report 1.json", []byte(`{"pages":12}`), nil))
	ours := crossbus.NewEvent("com.example.doc", "https://other.example.com")
	ours.SetDataContentType("application/json")
	ours.SetExtension(claimcheck.ExtDataRef, store.Ref("uploads/report 1.json"))
	assert.Equal(t, "mem://claims/uploads/report%201.json", claimcheck.Ref(&ours))
	require.NoError(t, r.raw.Publish(ctx, "docs", &ours))
	got = c.next(t)
	assert.JSONEq(t, `{"pages":12}`, string(got.Data()))
	n, err := crossbus.DataAs[map[string]int](got)
	require.NoError(t, err)
	assert.Equal(t, 12, n["pages"])
}

func TestRepublishedEventIsNotWrittenAgain(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 1024, memory.Options{})
	c, wire := newCollector(), newCollector()
	subscribe(t, r.bus, "invoices", "billing", c.handler(nil))
	subscribe(t, r.raw, "copies", "audit", wire.handler(nil))
	ctx := context.Background()
	data := payload(10<<10, 4)
	require.NoError(t, r.bus.Publish(ctx, "invoices", bigEvent(t, "inv-1", data)))
	got := c.next(t)
	require.NoError(t, store.Bucket().Delete(ctx, store.Key(data))) // a write would bring it back

	// A consumer publishes the event it received: the reference goes, not the data.
	require.NoError(t, r.bus.Publish(ctx, "copies", got))
	w := wire.next(t)
	assert.Empty(t, w.Data())
	assert.Equal(t, claimcheck.Ref(got), claimcheck.Ref(w))
	assert.Empty(t, objects(t, store.Bucket()), "nothing was written")
	sameBytes(t, data, got.Data()) // the handler's event is not changed either

	// Changed data is not the referenced object: written as new data.
	changed := got.Clone()
	require.NoError(t, crossbus.SetData(&changed, payload(10<<10, 5)))
	require.NoError(t, r.bus.Publish(ctx, "copies", &changed))
	w = wire.next(t)
	assert.Equal(t, store.Ref(store.Key(payload(10<<10, 5))), claimcheck.Ref(w))
}

func TestDeadLetterTopicCarriesTheReference(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 1024, memory.Options{})
	dead := newCollector()
	subscribe(t, r.raw, "invoices-dead", "ops", dead.handler(nil))
	// A pushed delivery has no native dead-letter queue: it goes to the topic.
	ep, err := r.bus.NewEndpoint("invoices", "billing",
		crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			if len(e.Data()) != 8<<10 {
				return errors.New("no data")
			}
			return crossbus.Permanent(errors.New("invoice rejected"))
		}), crossbus.WithDeadLetterTopic("invoices-dead"))
	require.NoError(t, err)
	data := payload(8<<10, 6)
	ref, err := store.Put(context.Background(), data, "application/pdf")
	require.NoError(t, err)
	e := bigEvent(t, "inv-9", nil)
	e.DataEncoded = nil
	e.SetExtension(claimcheck.ExtDataRef, ref)
	d := driver.NewPushDelivery(e, 1)
	ep.Deliver(context.Background(), d)
	o, _ := d.Outcome()
	assert.Equal(t, driver.OutcomeAcked, o)
	dl := dead.next(t)
	assert.Empty(t, dl.Data())
	assert.Equal(t, ref, claimcheck.Ref(dl))
	info, ok := crossbus.DeadLetterInfoOf(dl)
	require.True(t, ok)
	assert.Contains(t, info.Reason, "invoice rejected")
}

func TestBatchRoute(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 1024, memory.Options{})
	var mu sync.Mutex
	sizes := map[string]int{}
	done := make(chan struct{}, 10)
	s, err := r.bus.SubscribeBatch(context.Background(), "invoices", "archive",
		crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
			mu.Lock()
			for _, e := range events {
				sizes[e.ID()] = len(e.Data())
				done <- struct{}{}
			}
			mu.Unlock()
			return nil
		}), crossbus.WithBatch(10, 50*time.Millisecond),
		crossbus.WithFilter(crossbus.MustPattern(`{"type": ["com.example.invoice.attached"]}`)))
	require.NoError(t, err)
	defer s.Close(context.Background())
	require.NoError(t, r.bus.Publish(context.Background(), "invoices",
		bigEvent(t, "a", payload(5000, 1)), bigEvent(t, "b", payload(10, 2)), bigEvent(t, "c", payload(70000, 3))))
	for range 3 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("batch not handled")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"a": 5000, "b": 10, "c": 70000}, sizes)
}

func TestBatchRouteRetriesAFailedFetch(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 1024, memory.Options{})
	got := make(chan int, 10)
	s, err := r.bus.SubscribeBatch(context.Background(), "invoices", "archive",
		crossbus.BatchHandlerFunc(func(ctx context.Context, events []*crossbus.Event) []error {
			for _, e := range events {
				got <- len(e.Data())
			}
			return nil
		}), crossbus.WithBatch(10, 10*time.Millisecond), quick(20))
	require.NoError(t, err)
	defer s.Close(context.Background())
	data := payload(4000, 9)
	e := bigEvent(t, "late", nil)
	e.DataEncoded = nil
	e.SetExtension(claimcheck.ExtDataRef, store.Ref(store.Key(data)))
	require.NoError(t, r.raw.Publish(context.Background(), "invoices", e))
	time.Sleep(50 * time.Millisecond) // a few fetches fail
	_, err = store.Put(context.Background(), data, "application/pdf")
	require.NoError(t, err)
	select {
	case n := <-got:
		assert.Equal(t, 4000, n)
	case <-time.After(10 * time.Second):
		t.Fatal("not handled after the object appeared")
	}
}

func TestOrderedRouteRetriesTheFetchInPlace(t *testing.T) {
	store := memStore(t, "mem://claims")
	r := newRig(t, store, 1024, memory.Options{})
	c := newCollector()
	subscribe(t, r.bus, "invoices", "ledger", c.handler(nil), crossbus.WithOrdering(), quick(50))
	data := payload(4000, 7)
	first := bigEvent(t, "first", nil)
	first.DataEncoded = nil
	first.SetExtension(claimcheck.ExtDataRef, store.Ref(store.Key(data)))
	crossbus.SetPartitionKey(first, "k")
	second := bigEvent(t, "second", []byte("small"))
	crossbus.SetPartitionKey(second, "k")
	require.NoError(t, r.raw.Publish(context.Background(), "invoices", first, second))
	c.none(t, 60*time.Millisecond) // the second waits for the first
	_, err := store.Put(context.Background(), data, "application/pdf")
	require.NoError(t, err)
	assert.Equal(t, "first", c.next(t).ID())
	assert.Equal(t, "second", c.next(t).ID())
}

func TestOptionErrors(t *testing.T) {
	p := memory.New(memory.Options{})
	_, err := crossbus.New(p, claimcheck.Option(nil, 0))
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	store := memStore(t, "mem://claims")
	_, err = crossbus.New(p, claimcheck.Option(store, -1))
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = crossbus.New(p, claimcheck.Option(store, 1), claimcheck.Option(store, 1))
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = claimcheck.New(nil, "mem://x", nil)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = claimcheck.New(store.Bucket(), "no-scheme", nil)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = store.Sweep(context.Background(), 0)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestRunSweeper(t *testing.T) {
	store := memStore(t, "mem://claims")
	_, err := store.Put(context.Background(), []byte("old"), "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- store.RunSweeper(ctx, 20*time.Millisecond, time.Millisecond) }()
	require.Eventually(t, func() bool { return len(objects(t, store.Bucket())) == 0 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
