package peers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/mempubsub"
)

// gocdkRunner is a mempubsub topic and subscription with cfg.Concurrency
// goroutines each running a Receive / Ack loop.
type gocdkRunner struct {
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	t     *tracker
	cfg   Config
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

func openGoCDK(ctx context.Context, cfg Config) (Runner, error) {
	topic := mempubsub.NewTopic()
	sub := mempubsub.NewSubscription(topic, 30*time.Second) // crossbus's mem:// default lease
	recvCtx, stop := context.WithCancel(context.Background())
	r := &gocdkRunner{topic: topic, sub: sub, t: newTracker(), cfg: cfg, stop: stop}
	for range max(cfg.Concurrency, 1) {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				m, err := sub.Receive(recvCtx)
				if err != nil {
					return // cancelled or shut down
				}
				r.t.handle()
				m.Ack()
			}
		}()
	}
	return r, nil
}

func (r *gocdkRunner) Run(ctx context.Context, n int) error {
	return drive(r.t, n, 1, r.cfg.Window, func(int, int) error {
		return r.topic.Send(ctx, &pubsub.Message{
			Body:     payload,
			Metadata: map[string]string{"id": uuid.NewString(), "type": eventType}, // fresh UUIDv4 id
		})
	})
}

func (r *gocdkRunner) Close(ctx context.Context) error {
	r.stop()
	r.wg.Wait()
	return errors.Join(r.sub.Shutdown(ctx), r.topic.Shutdown(ctx))
}
