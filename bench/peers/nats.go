package peers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus"
	cbnats "github.com/crossbus/crossbus/providers/nats" // and nats://
)

// startNATS starts the embedded JetStream server every NATS scenario uses:
// file storage in dir, a random loopback port.
func startNATS(dir string) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats-server not ready")
	}
	return srv, nil
}

// natsEnv is a started server and what to undo when the scenario closes.
type natsEnv struct {
	srv     *server.Server
	cleanup func()
}

func newNATSEnv(cfg Config) (*natsEnv, error) {
	dir, cleanup, err := tempDir(cfg)
	if err != nil {
		return nil, err
	}
	srv, err := startNATS(dir)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &natsEnv{srv: srv, cleanup: cleanup}, nil
}

func (e *natsEnv) close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.cleanup()
}

// crossbus through providers/nats, opened by URL like an application would.

type crossbusNATSRunner struct {
	*crossbusRunner
	env *natsEnv
}

func openCrossbusNATS(ctx context.Context, cfg Config) (Runner, error) {
	env, err := newNATSEnv(cfg)
	if err != nil {
		return nil, err
	}
	bus, err := crossbus.Open(ctx, env.srv.ClientURL())
	if err != nil {
		env.close()
		return nil, err
	}
	r, err := startCrossbus(ctx, bus, cfg, nil, []crossbus.RouteOption{crossbus.WithConcurrency(cfg.Concurrency)})
	if err != nil {
		_ = bus.Close(ctx)
		env.close()
		return nil, err
	}
	r.publish, r.batch = r.publishBatch, cfg.Batch
	return &crossbusNATSRunner{crossbusRunner: r, env: env}, nil
}

func (r *crossbusNATSRunner) Close(ctx context.Context) error {
	err := r.crossbusRunner.Close(ctx)
	r.env.close()
	return err
}

// Raw nats.go: what a hand-written CloudEvents service on JetStream does.

type rawNATSRunner struct {
	env     *natsEnv
	nc      *natsio.Conn
	js      jetstream.JetStream
	t       *tracker
	cfg     Config
	cc      jetstream.ConsumeContext
	futures []jetstream.PubAckFuture
}

func openRawNATS(ctx context.Context, cfg Config) (Runner, error) {
	env, err := newNATSEnv(cfg)
	if err != nil {
		return nil, err
	}
	nc, err := natsio.Connect(env.srv.ClientURL())
	if err != nil {
		env.close()
		return nil, err
	}
	fail := func(err error) (Runner, error) {
		nc.Close()
		env.close()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	// The same stream and consumer crossbus creates for a topic and a
	// subscription.
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "orders", Subjects: []string{"orders"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fail(err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "billing", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 1000,
	})
	if err != nil {
		return fail(err)
	}
	r := &rawNATSRunner{env: env, nc: nc, js: js, t: newTracker(), cfg: cfg}
	// A pull consumer that keeps rawPrefetch messages buffered, crossbus's
	// default prefetch for providers/nats; the callback is the handler.
	r.cc, err = cons.Consume(func(m jetstream.Msg) {
		r.t.handle() // the handler decodes nothing
		_ = m.Ack()
	}, jetstream.PullMaxMessages(rawPrefetch))
	if err != nil {
		return fail(err)
	}
	return r, nil
}

// rawPrefetch is how many messages the raw consumer buffers ahead of its
// handler: crossbus's providers/nats default.
const rawPrefetch = cbnats.DefaultPrefetch

func (r *rawNATSRunner) Run(ctx context.Context, n int) error {
	batch := max(r.cfg.Batch, 1)
	return drive(r.t, n, batch, r.cfg.Window, func(_, k int) error {
		r.futures = r.futures[:0]
		for range k {
			id := uuid.NewString() // fresh UUIDv4 id
			msg := &natsio.Msg{Subject: "orders", Data: payload, Header: natsio.Header{
				"ce-specversion":     {"1.0"},
				"ce-id":              {id},
				"ce-source":          {eventSource},
				"ce-type":            {eventType},
				"ce-time":            {time.Now().UTC().Format(time.RFC3339Nano)},
				"ce-datacontenttype": {"application/json"},
				"Nats-Msg-Id":        {id},
			}}
			f, err := r.js.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			r.futures = append(r.futures, f)
		}
		for _, f := range r.futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}

func (r *rawNATSRunner) Close(context.Context) error {
	r.cc.Stop()
	r.nc.Close()
	r.env.close()
	return nil
}

// Watermill's JetStream pub/sub (watermill-nats/v2/pkg/jetstream) under a
// Router.

type watermillJSRunner struct {
	*watermillRunner
	env *natsEnv
}

func openWatermillJetStream(ctx context.Context, cfg Config) (Runner, error) {
	env, err := newNATSEnv(cfg)
	if err != nil {
		return nil, err
	}
	logger := watermill.NopLogger{}
	pub, err := wmjs.NewPublisher(wmjs.PublisherConfig{URL: env.srv.ClientURL(), Logger: logger})
	if err != nil {
		env.close()
		return nil, err
	}
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		URL:    env.srv.ClientURL(),
		Logger: logger,
		// Ack without waiting for the server's confirmation, as crossbus and
		// the raw client do (Watermill's default is a double ack).
		AckAsync: true,
	})
	if err != nil {
		_ = pub.Close()
		env.close()
		return nil, err
	}
	fail := func(err error) (Runner, error) {
		_ = sub.Close()
		_ = pub.Close()
		env.close()
		return nil, err
	}
	if err := sub.SubscribeInitialize("orders"); err != nil {
		return fail(fmt.Errorf("stream: %w", err))
	}
	r, err := startWatermill(ctx, cfg, pub, sub, "orders", nil)
	if err != nil {
		return fail(err)
	}
	r.batch, r.msgID = max(cfg.Batch, 1), true
	r.closers = append(r.closers, sub.Close, pub.Close)
	return &watermillJSRunner{watermillRunner: r, env: env}, nil
}

func (r *watermillJSRunner) Close(ctx context.Context) error {
	err := r.watermillRunner.Close(ctx)
	r.env.close()
	return err
}
