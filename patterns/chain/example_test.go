package chain_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
)

func ExampleCoordinator() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	store := chain.NewMemoryStore() // stores/sqlite for state that survives restarts

	def := &chain.Definition{Name: "order", Steps: []chain.Step{
		{Name: "payment", AttemptTimeout: 5 * time.Second},
		{Name: "shipping", Retry: chain.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, NonRetryable: []string{"shipping.NoRoute"}}},
	}}
	handlers := map[string]chain.Handler{
		"payment": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) { return "ch_42", nil },
			Undo: func(ctx context.Context, in *chain.Input) error {
				fmt.Println("refund", string(in.Outputs["payment"]))
				return nil
			},
		},
		"shipping": {Do: func(ctx context.Context, in *chain.Input) (any, error) {
			return nil, chain.Fail("shipping.NoRoute", errors.New("no carrier"))
		}},
	}
	worker, _ := chain.NewWorker(def, bus, store, handlers, chain.WorkerOptions{}) // may run in another service
	_ = worker.Start(ctx)
	defer worker.Close(ctx)
	coord, _ := chain.NewCoordinator(def, bus, store, chain.CoordinatorOptions{})
	_ = coord.Start(ctx)
	defer coord.Close(ctx)

	_, _ = coord.Begin(ctx, "order-42", map[string]int{"total": 1999})
	inst, _ := coord.Wait(ctx, "order-42")
	fmt.Println(inst.Status, inst.Completed)
	fmt.Println(errors.Is(inst.Err(), chain.Class("shipping.NoRoute")))
	// Output:
	// refund "ch_42"
	// compensated [payment]
	// true
}
