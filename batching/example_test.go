package batching_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/batching"
	"github.com/crossbus/crossbus/providers/memory"
)

// A BatchPublisher turns many small concurrent publishes into few sends;
// each caller still gets its own result.
func ExampleNewPublisher() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	var mem *memory.Provider
	bus.As(&mem)
	_ = mem.CreateSubscription(ctx, "clicks", "analytics", false)

	bp, _ := batching.NewPublisher(bus, batching.Options{MaxCount: 50, Linger: 5 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() { // many request handlers, each publishing one click
			defer wg.Done()
			e := crossbus.NewEvent("com.example.click", "/web")
			errs[i] = bp.Publish(ctx, "clicks", &e)
		}()
	}
	wg.Wait()
	_ = bp.Close(ctx)
	st, _ := mem.Stats("clicks", "analytics")
	fmt.Println("events on the topic:", st.Waiting, "errors:", errors.Join(errs...))
	// Output: events on the topic: 20 errors: <nil>
}
