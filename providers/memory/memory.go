// Package memory is the in-process crossbus provider: the embedded default and
// the reference for the delivery contract. Import it for its side effect to
// make "mem://" URLs work:
//
//	import _ "github.com/crossbus/crossbus/providers/memory"
//
// Topics fan out to named subscriptions; each subscription gets every event
// published after it was created, and consumers of one subscription compete
// for its events. A delivery is leased for an ack deadline and redelivered
// when the lease runs out, so a consumer that crashes loses nothing. Nack with
// a delay, dead-letter sub-queues and per-key ordering are native.
//
// Events are copied when published and again for each delivery, as a wire
// would copy them: a publisher may reuse its events once Publish returns, and
// a handler that changes its event changes nothing another subscription or
// a redelivery sees.
//
// Backpressure: each subscription holds at most MaxBacklog events (leased,
// waiting and delayed together). Publish waits for room in every subscription
// of the topic, event by event, until its context ends; events it could not
// place are reported in the *crossbus.PublishError, and no event is ever in
// some subscriptions of a topic but not others.
//
// Nothing here survives the process: use a durable provider (NATS embedded,
// a cloud) where events must outlive a restart.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

func init() {
	crossbus.Register("mem", providerkit.Opener(optionsFromURL, func(_ context.Context, o Options) (*Provider, error) {
		return New(o), nil
	}))
}

// Options configure a memory provider. The zero value is valid: see each
// field for its default.
type Options struct {
	// AutoCreate creates topics and subscriptions the first time they are
	// named. Without it, publishing to or subscribing on an entity that was
	// not created with CreateTopic / CreateSubscription fails with a
	// not-found error, as cloud providers do. The "mem://" URL turns it on
	// unless "?autocreate=false".
	AutoCreate bool
	// AckDeadline is the default lease of a delivery (default 30s).
	AckDeadline time.Duration
	// MaxBacklog bounds each subscription (default 1,000,000 events).
	MaxBacklog int
	// MaxEventBytes is the largest event accepted (default 1 MiB).
	MaxEventBytes int
	// MaxDeadLetters bounds each subscription's dead-letter sub-queue
	// (default 10,000 events). When it is full, DeadLetter fails and the
	// portable layer leaves the event in the subscription for a later
	// attempt (nothing is dropped); read or purge the dead letters to make
	// room.
	MaxDeadLetters int
	// Clock is the provider's time: delivery leases, delayed redelivery
	// (Nack with a delay) and lease extension follow it (default the
	// system clock). With a fake clock (package clocktest) a delayed
	// redelivery comes due when the test advances the clock past it, and
	// a lease runs out only when the clock passes its deadline. Routes on
	// a bus over this provider that set no clock of their own
	// (crossbus.WithClock) take this one, so in-place retries, rate limits
	// and breakers keep the same time.
	Clock crossbus.Clock
}

func optionsFromURL(u *url.URL) (Options, error) {
	o := Options{AutoCreate: true}
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return o, fmt.Errorf("%w: mem URL takes no host or path, got %q", driver.ErrInvalidURL, u.String())
	}
	params := providerkit.Params{
		providerkit.Bool("autocreate", &o.AutoCreate, "create entities when first named (default true)"),
		providerkit.Duration("ackdeadline", &o.AckDeadline, "default lease of a delivery"),
		providerkit.Int("maxbacklog", &o.MaxBacklog, "events a subscription holds at most"),
		providerkit.Int("maxeventbytes", &o.MaxEventBytes, "largest event accepted"),
		providerkit.Int("maxdeadletters", &o.MaxDeadLetters, "dead letters a subscription holds at most"),
	}
	if err := params.Parse("mem URL", u.Query()); err != nil {
		return o, err
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.AckDeadline < 0:
		return fmt.Errorf("%w: memory AckDeadline must not be negative, got %v", driver.ErrInvalidOption, o.AckDeadline)
	case o.MaxBacklog < 0:
		return fmt.Errorf("%w: memory MaxBacklog must not be negative, got %d", driver.ErrInvalidOption, o.MaxBacklog)
	case o.MaxEventBytes < 0:
		return fmt.Errorf("%w: memory MaxEventBytes must not be negative, got %d", driver.ErrInvalidOption, o.MaxEventBytes)
	case o.MaxDeadLetters < 0:
		return fmt.Errorf("%w: memory MaxDeadLetters must not be negative, got %d", driver.ErrInvalidOption, o.MaxDeadLetters)
	}
	return nil
}

// Provider is the in-memory provider.
type Provider struct {
	opts Options

	mu     sync.RWMutex
	topics map[string]*topic
	closed bool
	done   chan struct{} // closed by Close: wakes every waiter
}

type topic struct {
	name string
	subs []*subscription // copy-on-write under Provider.mu
}

// New returns a memory provider. Invalid options panic; use Open with a URL to
// get errors instead.
func New(o Options) *Provider {
	if err := o.validate(); err != nil {
		panic(err)
	}
	o.AckDeadline = cmp.Or(o.AckDeadline, 30*time.Second)
	o.MaxBacklog = cmp.Or(o.MaxBacklog, 1_000_000)
	o.MaxEventBytes = cmp.Or(o.MaxEventBytes, 1<<20)
	o.MaxDeadLetters = cmp.Or(o.MaxDeadLetters, 10_000)
	return &Provider{opts: o, topics: map[string]*topic{}, done: make(chan struct{})}
}

// Clock returns the clock set in Options.Clock, or nil when the provider
// follows the system clock. A bus over the provider gives it to routes that
// set no clock of their own.
func (p *Provider) Clock() crossbus.Clock { return p.opts.Clock }

// nanotime is the provider's time in Unix nanoseconds.
func (p *Provider) nanotime() int64 {
	if p.opts.Clock != nil {
		return p.opts.Clock.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// Capabilities reports the memory provider's native features.
func (p *Provider) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Ordering:           true,
		NativeDeadLetter:   true,
		DelayedRedelivery:  true,
		LeaseExtension:     true,
		MaxEventBytes:      p.opts.MaxEventBytes,
		DefaultAckDeadline: p.opts.AckDeadline,
	}
}

// MessagingSystem names the provider in telemetry (driver.MessagingSystem).
func (p *Provider) MessagingSystem() string { return "crossbus_memory" }

// As reaches the provider itself: target must be a **Provider.
func (p *Provider) As(target any) bool {
	if t, ok := target.(**Provider); ok {
		*t = p
		return true
	}
	return false
}

// CreateTopic creates a topic (no-op if it exists).
func (p *Provider) CreateTopic(ctx context.Context, name string) error {
	_, err := p.topic(name, true)
	return err
}

// CreateSubscription creates a subscription of topic that receives every event
// published from now on (no-op if it exists). ordered holds back later events
// of a partition key while one is in flight.
func (p *Provider) CreateSubscription(ctx context.Context, topicName, name string, ordered bool) error {
	_, err := p.subscription(topicName, name, ordered, true)
	return err
}

func (p *Provider) topic(name string, create bool) (*topic, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty topic name", driver.ErrInvalidOption)
	}
	p.mu.RLock()
	t, ok := p.topics[name]
	closed := p.closed
	p.mu.RUnlock()
	if closed {
		return nil, driver.ErrClosed
	}
	if ok {
		return t, nil
	}
	if !create && !p.opts.AutoCreate {
		return nil, fmt.Errorf("memory: topic %q: %w", name, driver.ErrTopicNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok = p.topics[name]; !ok {
		t = &topic{name: name}
		p.topics[name] = t
	}
	return t, nil
}

func (p *Provider) subscription(topicName, name string, ordered, create bool) (*subscription, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty subscription name", driver.ErrInvalidOption)
	}
	t, err := p.topic(topicName, create)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range t.subs {
		if s.name == name {
			return s, nil
		}
	}
	if !create && !p.opts.AutoCreate {
		return nil, fmt.Errorf("memory: subscription %q of topic %q: %w", name, topicName, driver.ErrSubscriptionNotFound)
	}
	s := newSubscription(p, topicName, name, ordered)
	subs := make([]*subscription, len(t.subs), len(t.subs)+1)
	copy(subs, t.subs)
	t.subs = append(subs, s)
	return s, nil
}

// DeleteSubscription deletes a subscription with its events and dead
// letters. Its receivers fail with driver.ErrSubscriptionNotFound, as
// they would on a cloud where the subscription was deleted.
func (p *Provider) DeleteSubscription(ctx context.Context, topicName, name string) error {
	t, err := p.topic(topicName, false)
	if err != nil {
		return err
	}
	p.mu.Lock()
	var gone *subscription
	subs := make([]*subscription, 0, len(t.subs))
	for _, s := range t.subs {
		if s.name == name {
			gone = s
			continue
		}
		subs = append(subs, s)
	}
	t.subs = subs
	p.mu.Unlock()
	if gone == nil {
		return fmt.Errorf("memory: subscription %q of topic %q: %w", name, topicName, driver.ErrSubscriptionNotFound)
	}
	gone.delete()
	return nil
}

// Publish appends the events to every subscription of topic, in order.
func (p *Provider) Publish(ctx context.Context, topicName string, events []*driver.Event) error {
	t, err := p.topic(topicName, false)
	if err != nil {
		return err
	}
	p.mu.RLock()
	subs := t.subs
	p.mu.RUnlock()
	frozen := copyEvents(events) // the caller may reuse its events once Publish returns
	for i := 0; i < len(events); {
		// Place as many events as every subscription has room for, then wait.
		n := len(events) - i
		for _, s := range subs {
			n = min(n, s.room())
		}
		if n == 0 {
			if err := p.waitRoom(ctx, subs); err != nil {
				return publishFailure(events, i, err)
			}
			continue
		}
		for _, s := range subs {
			s.enqueue(frozen[i : i+n])
		}
		i += n
	}
	return nil
}

func publishFailure(events []*driver.Event, from int, err error) error {
	pe := &crossbus.PublishError{}
	for j := from; j < len(events); j++ {
		pe.Failed = append(pe.Failed, crossbus.EventError{Index: j, EventID: events[j].ID(), Err: fmt.Errorf("memory: subscription backlog full: %w", err)})
	}
	return pe
}

func (p *Provider) waitRoom(ctx context.Context, subs []*subscription) error {
	for _, s := range subs {
		for s.room() == 0 {
			select {
			case <-s.space:
			case <-ctx.Done():
				return ctx.Err()
			case <-p.done:
				return driver.ErrClosed
			}
		}
	}
	return nil
}

// Subscribe opens a receiver on a subscription; receivers of one subscription
// compete for its events.
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	s, err := p.subscription(spec.Topic, spec.Name, spec.Ordered, false)
	if err != nil {
		return nil, err
	}
	lease := spec.AckDeadline
	if lease <= 0 {
		lease = p.opts.AckDeadline
	}
	return &receiver{p: p, s: s, q: &s.q, lease: lease, done: make(chan struct{})}, nil
}

// SubscribeDeadLetters opens a receiver over a subscription's dead-letter
// sub-queue. Dead letters carry the crossbus dead-letter extensions.
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topicName, name string) (driver.Receiver, error) {
	s, err := p.subscription(topicName, name, false, false)
	if err != nil {
		return nil, err
	}
	return &receiver{p: p, s: s, q: &s.dead, lease: p.opts.AckDeadline, dead: true, done: make(chan struct{})}, nil
}

// DeadLetters returns copies of the events in a subscription's dead-letter
// sub-queue that no receiver holds, in the order they were dead-lettered.
func (p *Provider) DeadLetters(topicName, name string) ([]driver.Event, error) {
	s, err := p.subscription(topicName, name, false, false)
	if err != nil {
		return nil, err
	}
	return s.deadLetters(), nil
}

// Stats counts a subscription's events by state.
type Stats struct {
	Waiting  int // not yet delivered, or ready for redelivery
	Delayed  int // nacked with a delay that has not passed
	InFlight int // leased to a consumer
	Dead     int // in the dead-letter sub-queue
}

// Stats returns a subscription's counts.
func (p *Provider) Stats(topicName, name string) (Stats, error) {
	s, err := p.subscription(topicName, name, false, false)
	if err != nil {
		return Stats{}, err
	}
	return s.stats(), nil
}

// Close stops every receiver and refuses further calls.
func (p *Provider) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	return nil
}

// newTimer makes a timer on the provider's clock.
func (p *Provider) newTimer(d time.Duration) crossbus.Timer {
	if p.opts.Clock != nil {
		return p.opts.Clock.NewTimer(d)
	}
	return sysTimer{time.NewTimer(d)}
}

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time        { return t.t.C }
func (t sysTimer) Stop() bool                 { return t.t.Stop() }
func (t sysTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
