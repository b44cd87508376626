package fanout_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/fanout"
)

func ExampleFanout() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	handled := map[string]int{}
	h := func(name string) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			mu.Lock()
			handled[name]++
			mu.Unlock()
			wg.Done()
			return nil
		})
	}
	f, _ := fanout.New("user-signedup",
		fanout.Subscriber{Name: "sms", Handler: h("sms"), Concurrency: 2,
			Retry: fanout.Retry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2})},
		fanout.Subscriber{Name: "email", Handler: h("email")},
	)
	running, _ := f.Start(ctx, bus)
	defer running.Close(ctx)
	wg.Add(2)
	e := crossbus.NewEvent("user-signedup", "/accounts")
	_ = f.Publish(ctx, bus, &e)
	wg.Wait()
	fmt.Println(handled["sms"], handled["email"])
	// Output: 1 1
}
