package crossbus

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/datahook"
	"github.com/crossbus/crossbus/internal/publishhook"
)

// registry maps URL schemes to openers. Like database/sql's driver list, it is
// the one piece of package state: providers add themselves in init.
var registry = struct {
	sync.RWMutex
	openers map[string]driver.Opener
}{openers: map[string]driver.Opener{}}

// Register makes a provider available under a URL scheme. It panics if the
// scheme is empty, the opener nil, or the scheme already registered, as
// database/sql.Register does: these are programming errors found at start-up.
//
// A scheme ending in '+' is a prefix, for providers that wrap another
// (providers/chaos registers "chaos+"): it opens every URL whose scheme
// starts with it and is not registered itself ("chaos+mem://",
// "chaos+nats+embedded:///dir"); the opener gets the whole URL and opens
// the inner one.
func Register(scheme string, open driver.Opener) {
	if scheme == "" || open == nil {
		panic("crossbus: Register needs a scheme and an opener")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.openers[scheme]; dup {
		panic("crossbus: Register called twice for scheme " + scheme)
	}
	registry.openers[scheme] = open
}

// schemes returns the registered URL schemes, sorted.
func schemes() []string {
	registry.RLock()
	defer registry.RUnlock()
	s := make([]string, 0, len(registry.openers))
	for k := range registry.openers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Open opens the provider named by rawURL's scheme ("mem://",
// "gcppubsub://projects/P", "nats://host:4222", ...) and returns a Bus over it.
// The provider's package must be imported (often blank-imported) so its scheme
// is registered.
func Open(ctx context.Context, rawURL string, opts ...BusOption) (*Bus, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errorf("%w: %q: %v", ErrInvalidURL, rawURL, withoutLibPrefix(err.Error()))
	}
	if u.Scheme == "" {
		return nil, errorf("%w: %q has no scheme (want e.g. mem://)", ErrInvalidURL, rawURL)
	}
	registry.RLock()
	open := registry.openers[u.Scheme]
	if open == nil {
		open = prefixOpener(u.Scheme)
	}
	registry.RUnlock()
	if open == nil {
		known := schemes()
		return nil, errorf("%w %q; registered: %s (import the provider package to register its scheme)",
			ErrUnknownScheme, u.Scheme, strings.Join(known, ", "))
	}
	p, err := open(ctx, u)
	if err != nil {
		return nil, errorf("open %s: %w", u.Redacted(), err)
	}
	return New(p, opts...)
}

// prefixOpener returns the opener of the longest registered prefix scheme
// (one ending in '+') that scheme starts with; registry is read-locked.
func prefixOpener(scheme string) driver.Opener {
	var open driver.Opener
	best := 0
	for k, o := range registry.openers {
		if strings.HasSuffix(k, "+") && len(k) > best && len(scheme) > len(k) && strings.HasPrefix(scheme, k) {
			open, best = o, len(k)
		}
	}
	return open
}

// Publisher publishes events. *Bus implements it; services that only publish
// can depend on this interface.
type Publisher interface {
	Publish(ctx context.Context, topic string, events ...*Event) error
}

// Subscriber starts consuming a subscription with a handler. *Bus implements it.
type Subscriber interface {
	Subscribe(ctx context.Context, topic, subscription string, h Handler, opts ...RouteOption) (*Subscription, error)
}

// BusOption configures a Bus.
type BusOption func(*Bus) error

// WithLogger sets the logger for delivery outcomes that are not returned to a
// caller (retries, dead-letters, settle failures). The default discards them.
func WithLogger(l *slog.Logger) BusOption {
	return func(b *Bus) error {
		if l == nil {
			return errNilOption("WithLogger")
		}
		b.log = l
		return nil
	}
}

// Bus is the portable layer over one provider: it validates and batches
// publishes and runs subscriptions with the delivery contract (retry,
// dead-letter, ordering, drain). It is safe for concurrent use.
type Bus struct {
	p    driver.Provider
	caps driver.Capabilities
	log  *slog.Logger
	data datahook.Hook // the claim check (package claimcheck), or nil

	tel     telemetry
	closed  atomic.Bool
	closing chan struct{} // closed by Close
	mu      sync.Mutex    // guards subs
	subs    map[*Subscription]struct{}

	afterPublish []publishhook.Hook // internal/publishhook
}

// New returns a Bus over a provider (for providers not opened by URL).
func New(p driver.Provider, opts ...BusOption) (*Bus, error) {
	if p == nil {
		return nil, errorf("%w: nil provider", ErrInvalidOption)
	}
	b := &Bus{p: p, caps: p.Capabilities(), log: slog.New(slog.DiscardHandler), subs: map[*Subscription]struct{}{},
		closing: make(chan struct{})}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	b.tel.init(p)
	return b, nil
}

// Provider returns the provider under the bus.
func (b *Bus) Provider() driver.Provider { return b.p }

// Capabilities returns the provider's capabilities.
func (b *Bus) Capabilities() driver.Capabilities { return b.caps }

// As reaches the provider's native client; see Provider.As.
func (b *Bus) As(target any) bool { return b.p.As(target) }

// Publish validates the events and sends them to topic in order, in batches
// within the provider's limits. An invalid or oversized event is refused and
// never sent; the others are. The result is nil, or a *PublishError listing
// exactly the events that were not published (by index in events) and why.
func (b *Bus) Publish(ctx context.Context, topic string, events ...*Event) error {
	if b.isClosed() {
		return errorf("%w: publish to %q", ErrClosed, topic)
	}
	if p := nameProblem(topic); p != "" {
		return errorf("publish: %w", ValidateName(topic))
	}
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return errorf("publish to %q: %w", topic, err)
	}
	var failed []EventError
	events, dataErrs := b.offload(ctx, events) // copies with data held by the claim check
	// Fast path: every event valid, no copy of the slice.
	send := events
	index := []int(nil) // index[i] is send[i]'s position in events; nil = identity
	for i, e := range events {
		err := errorAt(dataErrs, i)
		if err == nil {
			err = b.check(e)
		}
		if err != nil {
			if failed == nil {
				send = make([]*Event, 0, len(events))
				send = append(send, events[:i]...)
				index = make([]int, i, len(events))
				for j := range index {
					index[j] = j
				}
			}
			failed = append(failed, EventError{Index: i, EventID: eventID(e), Err: err})
			continue
		}
		if failed != nil {
			send = append(send, e)
			index = append(index, i)
		}
	}
	span := b.tel.publishSpan(ctx, topic, send)
	for start := 0; start < len(send); {
		end := b.batchEnd(send, start)
		err := b.p.Publish(ctx, topic, send[start:end])
		if err != nil {
			failed = appendBatchFailure(failed, err, send, index, start, end)
		}
		start = end
	}
	if b.tel.metricsOn() {
		b.tel.published.Add(ctx, int64(len(events)-len(failed)))
	}
	b.published(ctx, topic, send, index, failed)
	if failed == nil {
		span.End()
		return nil
	}
	b.tel.publishFailures.Add(ctx, int64(len(failed)))
	slices.SortFunc(failed, func(a, b EventError) int { return a.Index - b.Index })
	pe := &PublishError{Failed: failed}
	endSpan(span, pe)
	return pe
}

func eventID(e *Event) string {
	if e == nil || e.Context == nil {
		return ""
	}
	return e.ID()
}

func (b *Bus) check(e *Event) error {
	if e == nil {
		return &ValidationError{Fields: []FieldError{{Field: "event", Problem: "nil"}}}
	}
	if err := Validate(e); err != nil {
		return err
	}
	if b.caps.MaxEventBytes > 0 {
		if n := driver.EncodedSize(e); n > b.caps.MaxEventBytes {
			return &SizeError{EventID: e.ID(), Size: n, Limit: b.caps.MaxEventBytes}
		}
	}
	return nil
}

// batchEnd returns the end of the batch starting at start within the
// provider's count and byte limits.
func (b *Bus) batchEnd(events []*Event, start int) int {
	maxN, maxB := b.caps.MaxBatchCount, b.caps.MaxBatchBytes
	if maxN <= 0 && maxB <= 0 {
		return len(events)
	}
	size := 0
	end := start
	for end < len(events) {
		if maxN > 0 && end-start >= maxN {
			break
		}
		if maxB > 0 {
			n := driver.EncodedSize(events[end])
			if end > start && size+n > maxB {
				break
			}
			size += n
		}
		end++
	}
	return end
}

func appendBatchFailure(failed []EventError, err error, send []*Event, index []int, start, end int) []EventError {
	orig := func(i int) int {
		if index == nil {
			return i
		}
		return index[i]
	}
	var pe *PublishError
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			i := start + f.Index
			if f.Index < 0 || i >= end {
				continue
			}
			failed = append(failed, EventError{Index: orig(i), EventID: eventID(send[i]), Err: f.Err})
		}
		return failed
	}
	for i := start; i < end; i++ {
		failed = append(failed, EventError{Index: orig(i), EventID: eventID(send[i]), Err: err})
	}
	return failed
}

func (b *Bus) isClosed() bool { return b.closed.Load() }

// Close stops every subscription started on the bus, in parallel (each
// drains its running handlers up to its drain timeout or ctx's deadline,
// whichever comes first; see Subscription.Close), then closes the provider.
// It returns by ctx's deadline even if a handler or the provider does not:
// the provider's close then goes on in the background and the error wraps
// ctx's. Routers running on the bus return. Close is idempotent.
func (b *Bus) Close(ctx context.Context) error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.closing)
	b.mu.Lock()
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	err := closeAll(ctx, subs)
	closed := make(chan error, 1)
	go func() { closed <- b.p.Close(ctx) }()
	select {
	case perr := <-closed:
		if perr != nil {
			err = errors.Join(err, errorf("close provider: %w", perr))
		}
	case <-ctx.Done():
		err = errors.Join(err, errorf("close provider: %w", ctx.Err()))
	}
	return err
}
