// Package batching groups the publishes of many concurrent callers into
// fewer, larger Publish calls: Publisher sends what waits for a topic when
// MaxCount events or MaxBytes are pending, or Linger after the first one,
// and gives each caller exactly its own events' results.
//
//	bp, err := batching.NewPublisher(bus, batching.Options{MaxCount: 100, Linger: 10 * time.Millisecond})
//	defer bp.Close(ctx)
//	err = bp.Publish(ctx, "clicks", &event) // from many goroutines
package batching
