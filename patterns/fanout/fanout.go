// Package fanout delivers the events of one topic to many named
// subscribers (user signed up -> SMS, email, marketing, analytics), each
// with its own subscription, retry policy, concurrency and dead-letter
// destination. Because every subscriber has its own subscription, a
// subscriber that fails, retries or hangs never blocks the others and never
// makes them handle an event again.
//
//	f, err := fanout.New("user-signedup",
//		fanout.Subscriber{Name: "sms", Handler: sms, Retry: fanout.Retry(smsPolicy), DeadLetterTopic: "sms-dead"},
//		fanout.Subscriber{Name: "email", Handler: email, Concurrency: 4},
//	)
//	running, err := f.Start(ctx, bus) // or f.Mount(router) before router.Run
package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/crossbus/crossbus"
)

// Subscriber is one consumer of the topic.
type Subscriber struct {
	// Name is the subscriber's subscription name, unique within the fanout.
	Name    string
	Handler crossbus.Handler
	// Retry is the subscriber's retry policy (nil: the bus default).
	Retry *crossbus.RetryPolicy
	// Concurrency bounds its handlers running at once (0: the bus default).
	Concurrency int
	// DeadLetterTopic receives the events it gives up on, on providers
	// without a native dead-letter queue ("" uses the native queue).
	DeadLetterTopic string
	// Options are further route options (filter, idempotency, ordering...).
	Options []crossbus.RouteOption
}

// Retry returns p as a Subscriber.Retry value.
func Retry(p crossbus.RetryPolicy) *crossbus.RetryPolicy { return &p }

// Fanout is a topic and its subscribers.
type Fanout struct {
	topic string
	subs  []Subscriber
	stats map[string]*counters
}

type counters struct {
	attempts, succeeded, failed, gaveUp atomic.Int64
}

// Stats counts one subscriber's handling.
type Stats struct {
	Attempts  int64 // handler runs
	Succeeded int64 // runs that returned nil
	Failed    int64 // runs that returned an error (retried or not)
	GaveUp    int64 // events given up on: a permanent error or the last attempt failed
}

// New returns a fanout of topic to subs. The topic and the subscribers'
// names must be portable names (crossbus.ValidateName), the names unique,
// and every subscriber needs a handler; options are checked when it starts.
func New(topic string, subs ...Subscriber) (*Fanout, error) {
	if err := crossbus.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("fanout topic: %w", err)
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("%w: fanout of %q has no subscribers", crossbus.ErrInvalidOption, topic)
	}
	f := &Fanout{topic: topic, stats: map[string]*counters{}}
	for i, s := range subs {
		switch {
		case crossbus.ValidateName(s.Name) != nil:
			return nil, fmt.Errorf("fanout of %q: subscriber %d: %w", topic, i, crossbus.ValidateName(s.Name))
		case s.Handler == nil:
			return nil, fmt.Errorf("%w: fanout of %q: subscriber %q has no handler", crossbus.ErrInvalidOption, topic, s.Name)
		case f.stats[s.Name] != nil:
			return nil, fmt.Errorf("%w: fanout of %q: subscriber name %q is used twice", crossbus.ErrInvalidOption, topic, s.Name)
		case s.Concurrency < 0:
			return nil, fmt.Errorf("%w: fanout of %q: subscriber %q: Concurrency must not be negative", crossbus.ErrInvalidOption, topic, s.Name)
		}
		if s.Retry != nil {
			if err := s.Retry.Validate(); err != nil {
				return nil, fmt.Errorf("fanout of %q: subscriber %q: %w", topic, s.Name, err)
			}
		}
		f.stats[s.Name] = &counters{}
		f.subs = append(f.subs, s)
	}
	return f, nil
}

// Topic returns the fanout's topic.
func (f *Fanout) Topic() string { return f.topic }

// Publish publishes events to the fanout's topic.
func (f *Fanout) Publish(ctx context.Context, p crossbus.Publisher, events ...*crossbus.Event) error {
	return p.Publish(ctx, f.topic, events...)
}

// options returns the route options of s, with the counting middleware.
func (f *Fanout) options(s Subscriber) []crossbus.RouteOption {
	var opts []crossbus.RouteOption
	if s.Retry != nil {
		opts = append(opts, crossbus.WithRetry(*s.Retry))
	}
	if s.Concurrency > 0 {
		opts = append(opts, crossbus.WithConcurrency(s.Concurrency))
	}
	if s.DeadLetterTopic != "" {
		opts = append(opts, crossbus.WithDeadLetterTopic(s.DeadLetterTopic))
	}
	opts = append(opts, s.Options...)
	return append(opts, crossbus.WithMiddleware(f.count(s.Name)))
}

// count is the middleware that keeps a subscriber's Stats.
func (f *Fanout) count(name string) crossbus.Middleware {
	c := f.stats[name]
	return func(next crossbus.Handler) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			c.attempts.Add(1)
			err := next.Handle(ctx, e)
			if err == nil {
				c.succeeded.Add(1)
				return nil
			}
			c.failed.Add(1)
			info, ok := crossbus.DeliveryInfoFrom(ctx)
			if !errors.Is(err, crossbus.ErrInProgress) && (crossbus.IsPermanent(err) || ok && info.Attempt >= info.MaxAttempts) {
				c.gaveUp.Add(1)
			}
			return err
		})
	}
}

// Mount adds one route per subscriber to r; they run with r.Run.
func (f *Fanout) Mount(r *crossbus.Router) error {
	for _, s := range f.subs {
		if err := r.Handle(f.topic, s.Name, s.Handler, f.options(s)...); err != nil {
			return fmt.Errorf("fanout of %q: %w", f.topic, err)
		}
	}
	return nil
}

// Running is a started fanout.
type Running struct {
	subs []*crossbus.Subscription
}

// Start subscribes every subscriber and returns once all of them receive:
// events published after Start returns reach every subscriber. If one
// subscription fails, the others are closed.
func (f *Fanout) Start(ctx context.Context, s crossbus.Subscriber) (*Running, error) {
	run := &Running{}
	for _, sub := range f.subs {
		started, err := s.Subscribe(ctx, f.topic, sub.Name, sub.Handler, f.options(sub)...)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("fanout of %q: subscriber %q: %w", f.topic, sub.Name, err), run.Close(ctx))
		}
		run.subs = append(run.subs, started)
	}
	return run, nil
}

// Close stops every subscriber in parallel, draining in-flight handlers
// until ctx ends.
func (r *Running) Close(ctx context.Context) error {
	errs := make([]error, len(r.subs))
	var wg sync.WaitGroup
	for i, s := range r.subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Close(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats returns each subscriber's counts, by name.
func (f *Fanout) Stats() map[string]Stats {
	out := make(map[string]Stats, len(f.stats))
	for name, c := range f.stats {
		out[name] = Stats{Attempts: c.attempts.Load(), Succeeded: c.succeeded.Load(), Failed: c.failed.Load(), GaveUp: c.gaveUp.Load()}
	}
	return out
}

// Names returns the subscriber names in order of registration.
func (f *Fanout) Names() []string {
	names := make([]string, len(f.subs))
	for i, s := range f.subs {
		names[i] = s.Name
	}
	return names
}
