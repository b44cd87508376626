package peers

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	natsio "github.com/nats-io/nats.go"
)

// watermillRetry is Watermill's Retry middleware set to crossbus's default
// policy: 5 attempts (4 retries), 1s doubling to 1m, 20% jitter.
func watermillRetry() middleware.Retry {
	return middleware.Retry{
		MaxRetries:          4,
		InitialInterval:     time.Second,
		MaxInterval:         time.Minute,
		Multiplier:          2,
		RandomizationFactor: 0.2,
	}
}

// watermillRunner is a Watermill publisher and a Router with one handler
// consuming from a subscriber.
type watermillRunner struct {
	pub     message.Publisher
	router  *message.Router
	t       *tracker
	cfg     Config
	batch   int
	msgID   bool // set Nats-Msg-Id
	closers []func() error
}

func openWatermillGoChannel(withMiddleware bool) func(context.Context, Config) (Runner, error) {
	return func(ctx context.Context, cfg Config) (Runner, error) {
		logger := watermill.NopLogger{}
		ps := gochannel.NewGoChannel(gochannel.Config{}, logger)
		var mw []message.HandlerMiddleware
		if withMiddleware {
			mw = []message.HandlerMiddleware{watermillRetry().Middleware, middleware.Recoverer}
		}
		r, err := startWatermill(ctx, cfg, ps, ps, "orders", mw)
		if err != nil {
			_ = ps.Close()
			return nil, err
		}
		r.batch = 1
		r.closers = append(r.closers, ps.Close)
		return r, nil
	}
}

func startWatermill(ctx context.Context, cfg Config, pub message.Publisher, sub message.Subscriber, topic string, mw []message.HandlerMiddleware) (*watermillRunner, error) {
	t := newTracker()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	router.AddMiddleware(mw...)
	router.AddConsumerHandler("billing", topic, sub, func(*message.Message) error {
		t.handle()
		return nil // the router acks
	})
	go func() { _ = router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case <-ctx.Done():
		_ = router.Close()
		return nil, ctx.Err()
	}
	return &watermillRunner{pub: pub, router: router, t: t, cfg: cfg}, nil
}

// newWatermillMessage builds one message. With msgID set, the id also goes
// to the Nats-Msg-Id header (watermill-nats copies metadata to headers), so
// the stream tracks it for duplicates as it does for crossbus and the raw
// client.
func newWatermillMessage(msgID bool) *message.Message {
	id := watermill.NewUUID() // fresh UUIDv4 id
	m := message.NewMessage(id, payload)
	m.Metadata.Set("type", eventType)
	if msgID {
		m.Metadata.Set(natsio.MsgIdHdr, id)
	}
	return m
}

func (r *watermillRunner) Run(ctx context.Context, n int) error {
	return drive(r.t, n, r.batch, r.cfg.Window, func(i, k int) error {
		if k == 1 {
			return r.pub.Publish("orders", newWatermillMessage(r.msgID))
		}
		msgs := make([]*message.Message, k)
		for j := range msgs {
			msgs[j] = newWatermillMessage(r.msgID)
		}
		return r.pub.Publish("orders", msgs...)
	})
}

func (r *watermillRunner) Close(ctx context.Context) error {
	err := r.router.Close()
	for _, c := range r.closers {
		if e := c(); err == nil {
			err = e
		}
	}
	return err
}
