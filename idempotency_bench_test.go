package crossbus_test

import (
	"context"
	"testing"

	"github.com/crossbus/crossbus"
)

// BenchmarkIdempotency measures what the idempotency middleware with the
// memory store adds per event: "off" calls a no-op handler directly, "on"
// through the middleware (claim, run, complete), "duplicate" for an event
// already completed (the handler is skipped).
func BenchmarkIdempotency(b *testing.B) {
	ctx := crossbus.WithDeliveryInfo(context.Background(), crossbus.DeliveryInfo{Subscription: "bench", Attempt: 1})
	noop := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil })
	evs := make([]*crossbus.Event, 4096)
	for i := range evs {
		e := crossbus.NewEvent("com.example.bench", "/bench")
		evs[i] = &e
	}
	run := func(b *testing.B, h crossbus.Handler, fresh bool) {
		var all []*crossbus.Event
		if fresh { // every event new: built before the timer starts
			all = make([]*crossbus.Event, b.N)
			for i := range all {
				c := crossbus.NewEvent("com.example.bench", "/bench")
				all[i] = &c
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			e := evs[i%len(evs)]
			if fresh {
				e = all[i]
			}
			if err := h.Handle(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("off", func(b *testing.B) { run(b, noop, false) })
	b.Run("on", func(b *testing.B) {
		mw, _ := crossbus.Idempotent(crossbus.NewMemoryIdempotencyStore(1_000_000), crossbus.IdempotencyOptions{})
		run(b, mw(noop), true)
	})
	b.Run("duplicate", func(b *testing.B) {
		mw, _ := crossbus.Idempotent(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{})
		h := mw(noop)
		for _, e := range evs {
			_ = h.Handle(ctx, e)
		}
		run(b, h, false)
	})
}
