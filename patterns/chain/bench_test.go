package chain_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// BenchmarkChainStep measures the overhead a chain adds per step: a chain
// of 5 no-op steps run end to end (command publish, worker claim and record,
// result publish, coordinator load/save) on the mem:// bus, with the memory
// store and with a sqlite file. 50 instances run at once.
func BenchmarkChainStep(b *testing.B) {
	for _, kind := range []string{"memory", "sqlite"} {
		b.Run("store="+kind, func(b *testing.B) {
			var store chain.Store = chain.NewMemoryStore()
			if kind == "sqlite" {
				db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				store = db.Chains()
			}
			def := &chain.Definition{Name: "bench"}
			handlers := map[string]chain.Handler{}
			for i := 0; i < 5; i++ {
				name := fmt.Sprintf("s%d", i)
				def.Steps = append(def.Steps, chain.Step{Name: name})
				handlers[name] = chain.Handler{Do: ok(i)}
			}
			bus, err := crossbus.Open(context.Background(), "mem://")
			if err != nil {
				b.Fatal(err)
			}
			defer bus.Close(context.Background())
			w, err := chain.NewWorker(def, bus, store, handlers, chain.WorkerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			c, err := chain.NewCoordinator(def, bus, store, chain.CoordinatorOptions{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := w.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer w.Close(ctx)
			if err := c.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				ids := make([]string, 50)
				for j := range ids {
					ids[j] = fmt.Sprintf("i-%d", n)
					n++
					if _, err := c.Begin(ctx, ids[j], j); err != nil {
						b.Fatal(err)
					}
				}
				for _, id := range ids {
					inst, err := c.Wait(ctx, id)
					if err != nil || inst.Status != chain.StatusCompleted {
						b.Fatalf("%s: %v %v", id, err, inst.Status)
					}
				}
			}
			steps := float64(n * len(def.Steps))
			b.ReportMetric(b.Elapsed().Seconds()*1e6/steps, "µs/step")
			b.ReportMetric(steps/b.Elapsed().Seconds(), "steps/s")
		})
	}
}
