// Package chaos is a fault-injecting crossbus provider: it wraps any other
// provider and, at rates you choose, fails publishes, drops
// acknowledgements, duplicates, reorders and delays deliveries, fails
// receives, slows settlements and drops its connection — so tests can prove
// that the portable layer and the application above it lose nothing and
// apply nothing twice. Every injected fault is counted (Provider.Faults).
//
// Open it by URL, naming the inner provider after "chaos+"; parameters
// starting with "chaos." are the chaos provider's, the others go to the
// inner URL:
//
//	import _ "github.com/crossbus/crossbus/providers/chaos"
//
//	crossbus.Open(ctx, "chaos+mem://?chaos.seed=7&chaos.publisherror=0.1&chaos.duplicate=0.05")
//	crossbus.Open(ctx, "chaos+nats+embedded:///var/lib/bus?chaos.lostack=0.02&chaos.reorder=0.5")
//
// or wrap a provider in code with New. The parameters are the Options
// fields in lower case: seed, publisherror, publishpermanent, lostack,
// duplicate, reorder, reorderwithinkey, delay, maxdelay, receiveerror,
// slowsettle, settledelay, disconnect.
//
// # Faults
//
// Rates are probabilities from 0 to 1, drawn per event (publish errors,
// duplicates, delays), per settlement (lost acks, slow settles) or per
// Receive call (receive errors, dropped connections, reorders). A seed makes
// the draws repeatable: the same seed and the same sequence of calls inject
// the same faults (goroutine scheduling can change the sequence of calls).
//
//   - Publish errors: an event of a Publish fails; the others of the batch
//     are sent in order and the *crossbus.PublishError lists the failed ones.
//     A transient error is worth retrying; a permanent one is marked with
//     crossbus.Permanent.
//   - Lost acknowledgements: Ack reports success but never reaches the
//     inner provider, so the event comes back once its lease runs out.
//   - Duplicates: a delivery is handed out twice, the copy right after the
//     original (so key order holds). The copy's settlement is not passed on:
//     the original decides what happens to the event, as when a broker
//     redelivers a message whose first delivery is settled later.
//   - Reordering: a Receive's deliveries are shuffled, events of different
//     partition keys overtaking each other. Events of one key keep their
//     order unless ReorderWithinKey (events without a key may move freely).
//   - Delays: a delivery is held back for up to MaxDelay and handed out by
//     a later Receive. Later deliveries of its key wait behind it unless
//     ReorderWithinKey.
//   - Receive errors: a Receive fails with a transient error; the portable
//     layer backs off and receives again.
//   - Slow settlements: an Ack, Nack or DeadLetter waits SettleDelay first.
//   - Dropped connection: a Receive fails, and every delivery the receiver
//     handed out and not yet settled is lost with the connection: its
//     settlement fails, and the inner provider redelivers the event after
//     its lease.
//
// With every rate zero the provider is transparent: it passes the
// conformance suite (providers/providertest) like the provider it wraps.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

func init() {
	crossbus.Register("chaos+", open)
}

// Options are the fault rates (0 to 1) and their parameters. The zero value
// injects nothing.
type Options struct {
	// Seed seeds the draws (0 is a seed like any other).
	Seed uint64
	// PublishError is the rate of events whose publish fails with a
	// transient error, PublishPermanent with a permanent one.
	PublishError     float64
	PublishPermanent float64
	// LostAck is the rate of acknowledgements dropped on the way.
	LostAck float64
	// Duplicate is the rate of deliveries handed out twice.
	Duplicate float64
	// Reorder is the rate of Receive calls whose deliveries are shuffled
	// (between keys; within a key too with ReorderWithinKey).
	Reorder          float64
	ReorderWithinKey bool
	// Delay is the rate of deliveries held back, each for a random time up
	// to MaxDelay (default 100ms).
	Delay    float64
	MaxDelay time.Duration
	// ReceiveError is the rate of Receive calls that fail.
	ReceiveError float64
	// SlowSettle is the rate of settlements delayed by SettleDelay
	// (default 20ms).
	SlowSettle  float64
	SettleDelay time.Duration
	// Disconnect is the rate of Receive calls that drop the receiver's
	// connection, losing its unsettled deliveries.
	Disconnect float64
}

func (o Options) validate() error {
	rates := map[string]float64{"PublishError": o.PublishError, "PublishPermanent": o.PublishPermanent, "LostAck": o.LostAck,
		"Duplicate": o.Duplicate, "Reorder": o.Reorder, "Delay": o.Delay, "ReceiveError": o.ReceiveError,
		"SlowSettle": o.SlowSettle, "Disconnect": o.Disconnect}
	for name, r := range rates {
		if r < 0 || r > 1 || r != r {
			return fmt.Errorf("%w: chaos %s must be a rate from 0 to 1, got %v", driver.ErrInvalidOption, name, r)
		}
	}
	if o.MaxDelay < 0 || o.SettleDelay < 0 {
		return fmt.Errorf("%w: chaos MaxDelay and SettleDelay must not be negative", driver.ErrInvalidOption)
	}
	return nil
}

// Faults counts the faults a provider injected, by kind.
type Faults struct {
	PublishErrors    int64 // events whose publish failed with a transient error
	PublishPermanent int64 // events whose publish failed with a permanent error
	LostAcks         int64 // acknowledgements dropped
	Duplicates       int64 // deliveries handed out twice
	Reorders         int64 // Receive calls whose deliveries were shuffled
	Delays           int64 // deliveries held back
	ReceiveErrors    int64 // Receive calls failed
	SlowSettles      int64 // settlements delayed
	Disconnects      int64 // connections dropped
	LostSettlements  int64 // settlements that failed because their connection was dropped
}

// Total is the number of faults injected (lost settlements, a consequence
// of disconnects, not counted again).
func (f Faults) Total() int64 {
	return f.PublishErrors + f.PublishPermanent + f.LostAcks + f.Duplicates + f.Reorders + f.Delays +
		f.ReceiveErrors + f.SlowSettles + f.Disconnects
}

func (f Faults) String() string {
	return fmt.Sprintf("publish errors %d (permanent %d), lost acks %d, duplicates %d, reorders %d, delays %d, receive errors %d, slow settles %d, disconnects %d (settlements lost %d)",
		f.PublishErrors, f.PublishPermanent, f.LostAcks, f.Duplicates, f.Reorders, f.Delays, f.ReceiveErrors, f.SlowSettles, f.Disconnects, f.LostSettlements)
}

// ErrInjected is wrapped by every error the chaos provider makes up.
var ErrInjected = errors.New("chaos: injected fault")

// Provider wraps another provider and injects faults.
type Provider struct {
	inner driver.Provider
	opts  Options

	rngMu sync.Mutex
	rng   *rand.Rand

	counts struct {
		publishErrors, publishPermanent, lostAcks, duplicates, reorders, delays,
		receiveErrors, slowSettles, disconnects, lostSettlements atomic.Int64
	}
}

// New wraps inner. Invalid options panic; Open with a URL returns errors
// instead.
func New(inner driver.Provider, o Options) *Provider {
	if err := o.validate(); err != nil {
		panic(err)
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = 100 * time.Millisecond
	}
	if o.SettleDelay == 0 {
		o.SettleDelay = 20 * time.Millisecond
	}
	return &Provider{inner: inner, opts: o, rng: rand.New(rand.NewPCG(o.Seed, 0x63686173))}
}

// Faults returns how many faults were injected so far, by kind.
func (p *Provider) Faults() Faults {
	c := &p.counts
	return Faults{PublishErrors: c.publishErrors.Load(), PublishPermanent: c.publishPermanent.Load(), LostAcks: c.lostAcks.Load(),
		Duplicates: c.duplicates.Load(), Reorders: c.reorders.Load(), Delays: c.delays.Load(), ReceiveErrors: c.receiveErrors.Load(),
		SlowSettles: c.slowSettles.Load(), Disconnects: c.disconnects.Load(), LostSettlements: c.lostSettlements.Load()}
}

// Options returns the provider's fault rates.
func (p *Provider) Options() Options { return p.opts }

// Inner returns the wrapped provider.
func (p *Provider) Inner() driver.Provider { return p.inner }

// hit draws whether a fault of the given rate happens.
func (p *Provider) hit(rate float64) bool {
	if rate <= 0 {
		return false
	}
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	return p.rng.Float64() < rate
}

func (p *Provider) intN(n int) int {
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	return p.rng.IntN(n)
}

// Capabilities are the inner provider's.
func (p *Provider) Capabilities() driver.Capabilities { return p.inner.Capabilities() }

// As reaches the chaos provider itself (**Provider) or the inner provider's
// native client.
func (p *Provider) As(target any) bool {
	if t, ok := target.(**Provider); ok {
		*t = p
		return true
	}
	return p.inner.As(target)
}

// MessagingSystem is the inner provider's.
func (p *Provider) MessagingSystem() string {
	if ms, ok := p.inner.(driver.MessagingSystem); ok {
		return ms.MessagingSystem()
	}
	return "chaos"
}

// Close closes the inner provider.
func (p *Provider) Close(ctx context.Context) error { return p.inner.Close(ctx) }

// SubscribeDeadLetters reads the inner provider's dead letters, without
// faults.
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	r, ok := p.inner.(driver.DeadLetterReader)
	if !ok {
		return nil, fmt.Errorf("chaos: the inner provider keeps no readable dead-letter queue: %w", driver.ErrNotSupported)
	}
	return r.SubscribeDeadLetters(ctx, topic, subscription)
}

// Publish sends the events that draw no fault, in order, and reports the
// others in a *crossbus.PublishError.
func (p *Provider) Publish(ctx context.Context, topic string, events []*driver.Event) error {
	var failed []crossbus.EventError
	send := events
	var index []int // send[i] is events[index[i]]; nil while identical
	for i, e := range events {
		var err error
		switch {
		case p.hit(p.opts.PublishPermanent):
			p.counts.publishPermanent.Add(1)
			err = driver.Permanent(fmt.Errorf("%w: permanent publish error", ErrInjected))
		case p.hit(p.opts.PublishError):
			p.counts.publishErrors.Add(1)
			err = fmt.Errorf("%w: transient publish error", ErrInjected)
		}
		if err == nil {
			if index != nil {
				send = append(send, e)
				index = append(index, i)
			}
			continue
		}
		if index == nil {
			send = append(make([]*driver.Event, 0, len(events)), events[:i]...)
			index = make([]int, i, len(events))
			for j := range index {
				index[j] = j
			}
		}
		failed = append(failed, crossbus.EventError{Index: i, EventID: e.ID(), Err: err})
	}
	if len(send) > 0 {
		if err := p.inner.Publish(ctx, topic, send); err != nil {
			failed = appendInner(failed, err, send, index)
		}
	}
	if failed == nil {
		return nil
	}
	sortByIndex(failed)
	return &crossbus.PublishError{Failed: failed}
}

func appendInner(failed []crossbus.EventError, err error, send []*driver.Event, index []int) []crossbus.EventError {
	orig := func(i int) int {
		if index == nil {
			return i
		}
		return index[i]
	}
	var pe *crossbus.PublishError
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			if f.Index >= 0 && f.Index < len(send) {
				failed = append(failed, crossbus.EventError{Index: orig(f.Index), EventID: f.EventID, Err: f.Err})
			}
		}
		return failed
	}
	for i, e := range send {
		failed = append(failed, crossbus.EventError{Index: orig(i), EventID: e.ID(), Err: err})
	}
	return failed
}

func sortByIndex(f []crossbus.EventError) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Index < f[j-1].Index; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// open opens "chaos+<inner URL>".
func open(ctx context.Context, u *url.URL) (driver.Provider, error) {
	innerScheme := strings.TrimPrefix(u.Scheme, "chaos+")
	o, rest, err := optionsFromQuery(u.Query())
	if err != nil {
		return nil, err
	}
	inner := *u
	inner.Scheme = innerScheme
	inner.RawQuery = rest.Encode()
	bus, err := crossbus.Open(ctx, inner.String())
	if err != nil {
		return nil, fmt.Errorf("chaos: inner provider: %w", err)
	}
	return New(bus.Provider(), o), nil
}

// optionsFromQuery takes the "chaos." parameters and returns the others.
func optionsFromQuery(q url.Values) (Options, url.Values, error) {
	var o Options
	rest := url.Values{}
	for k, vs := range q {
		name, ok := strings.CutPrefix(k, "chaos.")
		if !ok {
			rest[k] = vs
			continue
		}
		v := vs[len(vs)-1]
		var err error
		rate := func(dst *float64) { *dst, err = strconv.ParseFloat(v, 64) }
		switch name {
		case "seed":
			o.Seed, err = strconv.ParseUint(v, 10, 64)
		case "publisherror":
			rate(&o.PublishError)
		case "publishpermanent":
			rate(&o.PublishPermanent)
		case "lostack":
			rate(&o.LostAck)
		case "duplicate":
			rate(&o.Duplicate)
		case "reorder":
			rate(&o.Reorder)
		case "reorderwithinkey":
			o.ReorderWithinKey, err = strconv.ParseBool(v)
		case "delay":
			rate(&o.Delay)
		case "maxdelay":
			o.MaxDelay, err = time.ParseDuration(v)
		case "receiveerror":
			rate(&o.ReceiveError)
		case "slowsettle":
			rate(&o.SlowSettle)
		case "settledelay":
			o.SettleDelay, err = time.ParseDuration(v)
		case "disconnect":
			rate(&o.Disconnect)
		default:
			return o, nil, fmt.Errorf("%w: unknown chaos URL parameter %q (known: chaos.seed, chaos.publisherror, chaos.publishpermanent, chaos.lostack, chaos.duplicate, chaos.reorder, chaos.reorderwithinkey, chaos.delay, chaos.maxdelay, chaos.receiveerror, chaos.slowsettle, chaos.settledelay, chaos.disconnect)", driver.ErrInvalidURL, k)
		}
		if err != nil {
			return o, nil, fmt.Errorf("%w: chaos URL parameter %s=%q: %v", driver.ErrInvalidURL, k, v, err)
		}
	}
	return o, rest, o.validate()
}

// The conformance guarantees (providers/providertest) that hold with faults
// on. The package's tests prove each list against the memory provider.
var (
	// GuaranteesUnderDeliveryFaults hold with lost acknowledgements,
	// duplicates, reordering, delays, receive errors, slow settlements and
	// dropped connections: nothing is lost, and an idempotent consumer
	// handles each event once. (Guarantees that count handler runs or
	// attempts exactly cannot hold when a delivery may be repeated.)
	GuaranteesUnderDeliveryFaults = []string{
		"NoEventLostUnderLoad",
		"IdempotentConsumerSkipsDuplicates",
		"AllAttributesExtensionsAndBinaryDataRoundTrip",
		"PublisherReuseAndHandlerChangesAreIsolated",
		"FilteredSubscriptionNeverReceivesANonMatchingEvent",
	}
	// GuaranteesUnderOrderKeepingFaults hold with reordering between keys,
	// delays that keep a key's order, receive errors and slow settlements:
	// every delivery still arrives once, so retries, attempt counts,
	// dead-lettering and per-key order are exact.
	GuaranteesUnderOrderKeepingFaults = []string{
		"NoEventLostUnderLoad",
		"IdempotentConsumerSkipsDuplicates",
		"FanOutToTwoSubscriptions",
		"CompetingConsumersHandleEachEventOnce",
		"NackRedeliversWithRisingAttempts",
		"DelayedRedeliveryNotEarlierThanAsked",
		"DeadLetterAfterMaxAttemptsWithReason",
		"PermanentErrorDeadLettersAfterOneAttempt",
		"PanicIsRecoveredAndDeadLettered",
		"OrderedPerKeyWithConcurrentWorkers",
		"FilteredSubscriptionNeverReceivesANonMatchingEvent",
	}
)
