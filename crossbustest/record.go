package crossbustest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

// Published is an event a Publish placed on a topic.
type Published struct {
	Topic string
	Event crossbus.Event
	At    time.Time // on the kit's clock
}

// Handling is one run of a route's handler (with the route's middleware and
// timeout) and what it returned.
type Handling struct {
	Topic        string
	Subscription string
	Event        crossbus.Event
	Attempt      int
	Err          error // nil: handled
	At           time.Time
}

// OK reports whether the handler returned nil.
func (h Handling) OK() bool { return h.Err == nil }

// Outcome is how a delivery was settled.
type Outcome int

// The outcomes of a delivery.
const (
	Acked        Outcome = iota + 1 // done (handled, skipped by the route's filter, or a completed duplicate)
	Nacked                          // returned for redelivery (Settlement.Delay says when)
	DeadLettered                    // moved to the subscription's dead-letter queue
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Nacked:
		return "nacked"
	case DeadLettered:
		return "dead-lettered"
	}
	return "unknown"
}

// Settlement is how one delivery of an event to a subscription ended.
type Settlement struct {
	Topic        string
	Subscription string
	Event        crossbus.Event
	Attempt      int
	Outcome      Outcome
	Delay        time.Duration           // Nacked: the redelivery delay asked for
	Info         crossbus.DeadLetterInfo // DeadLettered: reason, attempts, time
	Err          error                   // the provider refused the settlement (a lease that ran out)
	At           time.Time
}

// DeadLetter is an event a subscription gave up on.
type DeadLetter struct {
	Topic        string
	Subscription string
	Event        crossbus.Event
	Info         crossbus.DeadLetterInfo
}

type subKey struct{ topic, name string }

// recorder keeps what happened on the kit's bus and whether anything is
// moving.
type recorder struct {
	mem   *memory.Provider
	clock *clocktest.Clock

	mu          sync.Mutex
	published   []Published
	handlings   []Handling
	settlements []Settlement
	subs        []subKey
	seen        map[subKey]bool
	held        map[*recDelivery]time.Time // lease deadlines on the kit's clock
	publishing  int
	settling    int // settlements begun and not yet recorded
	running     int
	gen         uint64        // bumped by every change
	changed     chan struct{} // closed and replaced by every change
	lastChange  time.Time     // real time of the last change
}

func newRecorder(mem *memory.Provider, clock *clocktest.Clock) *recorder {
	return &recorder{mem: mem, clock: clock, seen: map[subKey]bool{}, held: map[*recDelivery]time.Time{},
		changed: make(chan struct{}), lastChange: time.Now()}
}

func (r *recorder) now() time.Time {
	if r.clock != nil {
		return r.clock.Now()
	}
	return time.Now()
}

// touch notes a change; r.mu is held.
func (r *recorder) touch() {
	r.gen++
	close(r.changed)
	r.changed = make(chan struct{})
	r.lastChange = time.Now()
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published, r.handlings, r.settlements = nil, nil, nil
	r.touch()
}

// watch returns the channel closed by the next change and the current
// generation.
func (r *recorder) watch() (<-chan struct{}, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed, r.gen
}

// quiet reports whether nothing changed since gen for at least d.
func (r *recorder) quiet(gen uint64, d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen == gen && time.Since(r.lastChange) >= d
}

// earliestLease is the earliest lease deadline of a delivery held now.
func (r *recorder) earliestLease() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for _, dl := range r.held {
		if first.IsZero() || dl.Before(first) {
			first = dl
		}
	}
	return first, !first.IsZero()
}

// busy describes why the system is not idle ("" when it is).
func (r *recorder) busy() string {
	r.mu.Lock()
	gen, publishing, settling := r.gen, r.publishing, r.settling
	subs := append([]subKey(nil), r.subs...)
	r.mu.Unlock()
	if publishing > 0 {
		return "a publish is in progress"
	}
	if settling > 0 {
		return "a delivery is being settled"
	}
	for _, s := range subs {
		st, err := r.mem.Stats(s.topic, s.name)
		if err != nil {
			continue // deleted, or the provider closed
		}
		if st.Waiting+st.InFlight+st.Delayed > 0 {
			return describeStats(s, st)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != gen {
		return "events moved while the subscriptions were read"
	}
	return ""
}

func describeStats(s subKey, st memory.Stats) string {
	return "subscription " + s.name + " of topic " + s.topic + " holds events: " +
		itoa(st.Waiting) + " waiting, " + itoa(st.InFlight) + " leased to a handler, " + itoa(st.Delayed) + " delayed for redelivery"
}

func (r *recorder) addSub(topic, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := subKey{topic, name}
	if !r.seen[k] {
		r.seen[k] = true
		r.subs = append(r.subs, k)
	}
	r.touch()
}

// recordingProvider is the memory provider seen through the recorder.
// Everything it does not override (Capabilities, As, Clock, Stats,
// SubscribeDeadLetters, MessagingSystem, Close) is the memory provider's.
type recordingProvider struct {
	*memory.Provider
	rec *recorder
}

func (p *recordingProvider) Publish(ctx context.Context, topic string, events []*crossbus.Event) error {
	r := p.rec
	r.mu.Lock()
	r.publishing++
	r.touch()
	r.mu.Unlock()
	err := p.Provider.Publish(ctx, topic, events)
	failed := map[int]bool{}
	var pe *crossbus.PublishError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		for _, f := range pe.Failed {
			failed[f.Index] = true
		}
	default:
		for i := range events {
			failed[i] = true
		}
	}
	at := r.now()
	recs := make([]Published, 0, len(events))
	for i, e := range events {
		if !failed[i] {
			recs = append(recs, Published{Topic: topic, Event: e.Clone(), At: at})
		}
	}
	r.mu.Lock()
	r.published = append(r.published, recs...)
	r.publishing--
	r.touch()
	r.mu.Unlock()
	return err
}

func (p *recordingProvider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	recv, err := p.Provider.Subscribe(ctx, spec)
	if err != nil {
		return nil, err
	}
	lease := spec.AckDeadline
	if lease <= 0 {
		lease = p.Provider.Capabilities().DefaultAckDeadline
	}
	p.rec.addSub(spec.Topic, spec.Name)
	return &recReceiver{Receiver: recv, rec: p.rec, topic: spec.Topic, name: spec.Name, lease: lease}, nil
}

// ObserveHandler wraps every route's handler on the kit's bus (a hook of
// the portable layer): each run is recorded with what it returned.
func (p *recordingProvider) ObserveHandler(topic, subscription string, h crossbus.Handler) crossbus.Handler {
	r := p.rec
	return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		r.mu.Lock()
		r.running++
		r.touch()
		r.mu.Unlock()
		err := h.Handle(ctx, e)
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		rec := Handling{Topic: topic, Subscription: subscription, Event: e.Clone(), Attempt: info.Attempt, Err: err, At: r.now()}
		r.mu.Lock()
		r.running--
		r.handlings = append(r.handlings, rec)
		r.touch()
		r.mu.Unlock()
		return err
	})
}

type recReceiver struct {
	driver.Receiver
	rec         *recorder
	topic, name string
	lease       time.Duration
}

func (rr *recReceiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	n, err := rr.Receiver.Receive(ctx, buf)
	if n == 0 {
		return n, err
	}
	r := rr.rec
	deadline := r.now().Add(rr.lease)
	r.mu.Lock()
	for i := range buf[:n] {
		d := &recDelivery{Delivery: buf[i], rr: rr}
		r.held[d] = deadline
		buf[i] = d
	}
	r.touch()
	r.mu.Unlock()
	return n, err
}

type recDelivery struct {
	driver.Delivery
	rr *recReceiver
}

// settling notes a settlement about to reach the provider: the provider
// may show the event gone before settled records how.
func (d *recDelivery) settling() {
	r := d.rr.rec
	r.mu.Lock()
	r.settling++
	r.touch()
	r.mu.Unlock()
}

func (d *recDelivery) settled(s Settlement, err error) {
	r := d.rr.rec
	s.Topic, s.Subscription, s.Attempt, s.Err, s.At = d.rr.topic, d.rr.name, d.Delivery.Attempt(), err, r.now()
	s.Event = d.Delivery.Event().Clone()
	r.mu.Lock()
	r.settling--
	delete(r.held, d)
	r.settlements = append(r.settlements, s)
	r.touch()
	r.mu.Unlock()
}

func (d *recDelivery) Ack(ctx context.Context) error {
	d.settling()
	err := d.Delivery.Ack(ctx)
	d.settled(Settlement{Outcome: Acked}, err)
	return err
}

func (d *recDelivery) Nack(ctx context.Context, delay time.Duration) error {
	d.settling()
	err := d.Delivery.Nack(ctx, delay)
	d.settled(Settlement{Outcome: Nacked, Delay: delay}, err)
	return err
}

func (d *recDelivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	d.settling()
	err := d.Delivery.DeadLetter(ctx, info)
	d.settled(Settlement{Outcome: DeadLettered, Info: info}, err)
	return err
}

func (d *recDelivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	x, ok := d.Delivery.(driver.LeaseExtender)
	if !ok {
		return driver.ErrNotSupported
	}
	err := x.ExtendLease(ctx, lease)
	if err == nil {
		r := d.rr.rec
		r.mu.Lock()
		if _, held := r.held[d]; held {
			r.held[d] = r.now().Add(lease)
		}
		r.mu.Unlock()
	}
	return err
}
