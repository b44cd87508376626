package memory_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

// BenchmarkEventConstruction measures what a producer pays per event when it
// builds each event anew: NewEvent, SetData of a small struct (JSON), and
// Publish of that one event on the memory provider. "publish" has no
// subscription (the event is built, validated, encoded and accepted);
// "publish-handle" adds one subscription whose handler acks, so allocs/op
// is the whole path of one event; "publish-batch=100" builds events the
// same way and publishes them 100 per call (an op is still one event).
func BenchmarkEventConstruction(b *testing.B) {
	b.Run("publish", func(b *testing.B) { benchConstruct(b, false) })
	b.Run("publish-handle", func(b *testing.B) { benchConstruct(b, true) })
	b.Run("publish-batch=100", benchConstructBatch)
}

func benchConstructBatch(b *testing.B) {
	ctx := context.Background()
	bus, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	o := benchOrder{ID: "o-1", Amount: 42}
	batch := make([]*crossbus.Event, 0, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := crossbus.NewEvent("com.example.order.placed", "/orders")
		if err := crossbus.SetData(&ev, o); err != nil {
			b.Fatal(err)
		}
		batch = append(batch, &ev)
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := bus.Publish(ctx, "orders", batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

type benchOrder struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func benchConstruct(b *testing.B, handle bool) {
	ctx := context.Background()
	bus, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	var handled atomic.Int64
	if handle {
		_, err := bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
			handled.Add(1)
			return nil
		}), crossbus.WithPrefetch(64), crossbus.WithConcurrency(2))
		if err != nil {
			b.Fatal(err)
		}
	}
	o := benchOrder{ID: "o-1", Amount: 42}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := crossbus.NewEvent("com.example.order.placed", "/orders")
		if err := crossbus.SetData(&ev, o); err != nil {
			b.Fatal(err)
		}
		if err := bus.Publish(ctx, "orders", &ev); err != nil {
			b.Fatal(err)
		}
		if handle {
			for int64(i)-handled.Load() > 4096 {
				runtime.Gosched()
			}
		}
	}
	if handle {
		for handled.Load() < int64(b.N) {
			runtime.Gosched()
		}
	}
}
