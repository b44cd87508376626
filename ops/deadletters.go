package ops

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Extensions operations set on the events they re-publish (see the package
// documentation).
const (
	ExtRedriven           = "redriven"
	ExtFirstDeadLetter    = "firstdeadletter"
	ExtReplayed           = "replayed"
	ExtTargetSubscription = "targetsubscription"
)

// ErrNotFound is matched by the errors for an unknown dead letter, group,
// replay or route.
var ErrNotFound = errors.New("crossbus/ops: not found")

// Source says where the dead letters of a route are kept.
type Source struct {
	// Topic and Subscription name the route. Without a dead-letter topic,
	// the subscription's native dead-letter queue is read
	// (crossbus.Bus.DeadLetters).
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	// DeadLetterTopic and DeadLetterSubscription, when set, read the dead
	// letters from a subscription of a dead-letter topic instead (the
	// route's WithDeadLetterTopic, on providers without a readable native
	// queue). The subscription must have existed when the dead letters were
	// published. With Subscription set, only the dead letters of that
	// route are listed (a dead-letter topic may be shared by routes); with
	// Topic and Subscription empty, every dead letter in it is.
	//
	// Every read counts a delivery of each dead letter in that
	// subscription. So that reads do not use up its maximum delivery count
	// (Event Grid: 10 at most), a read re-publishes to the dead-letter topic
	// the dead letters delivered 5 times or more and takes the originals
	// out: the copies keep their IDs, and the topic's other subscriptions,
	// if any, get them again. Give the subscription a maximum above 5.
	DeadLetterTopic        string `json:"deadLetterTopic,omitempty"`
	DeadLetterSubscription string `json:"deadLetterSubscription,omitempty"`
}

func (s Source) String() string {
	if s.DeadLetterTopic != "" {
		return fmt.Sprintf("dead-letter topic %q (subscription %q)", s.DeadLetterTopic, s.DeadLetterSubscription)
	}
	return fmt.Sprintf("dead-letter queue of subscription %q of topic %q", s.Subscription, s.Topic)
}

func (s Source) check() error {
	if s.DeadLetterTopic != "" || s.DeadLetterSubscription != "" {
		if err := crossbus.ValidateName(s.DeadLetterTopic); err != nil {
			return errorf("dead-letter topic: %w", err)
		}
		if err := crossbus.ValidateName(s.DeadLetterSubscription); err != nil {
			return errorf("dead-letter subscription: %w", err)
		}
		return nil
	}
	return s.checkRoute()
}

func (s Source) checkRoute() error {
	if err := crossbus.ValidateName(s.Topic); err != nil {
		return errorf("topic: %w", err)
	}
	if err := crossbus.ValidateName(s.Subscription); err != nil {
		return errorf("subscription: %w", err)
	}
	return nil
}

// DeadLetter is one dead-lettered event and why it was given up on.
type DeadLetter struct {
	// ID is stable for as long as the event stays dead-lettered: it is
	// made of the event's source and id, the subscription that gave up on
	// it and the time it did, so the same dead letter has the same ID in
	// every listing, process and provider.
	ID    string         `json:"id"`
	Event crossbus.Event `json:"event"`
	// Reason is the handler's last error; Cause is the reason normalised
	// for grouping (NormalizeReason), Group the group's id.
	Reason   string `json:"reason"`
	Cause    string `json:"cause"`
	Group    string `json:"group"`
	Attempts int    `json:"attempts"`
	// Topic and Subscription are where the event failed.
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	// FirstFailure is when the event was first dead-lettered (before any
	// redrive); LastFailure when it was dead-lettered this time.
	FirstFailure time.Time `json:"firstFailure"`
	LastFailure  time.Time `json:"lastFailure"`
	// Redriven is how many times the event was redriven before.
	Redriven int `json:"redriven,omitempty"`
}

// Group is the dead letters of one cause from one route.
type Group struct {
	ID           string    `json:"id"`
	Cause        string    `json:"cause"`
	Topic        string    `json:"topic"`
	Subscription string    `json:"subscription"`
	Count        int       `json:"count"`
	Example      string    `json:"example"` // one of the reasons, as it was
	FirstFailure time.Time `json:"firstFailure"`
	LastFailure  time.Time `json:"lastFailure"`
}

// Options tune how dead letters are read.
type Options struct {
	// Wait bounds the wait for the first dead letter of a read (default
	// 2s): a queue that yields nothing by then is taken as empty.
	Wait time.Duration
	// Idle ends a read once no new dead letter arrived for this long
	// (default 500ms).
	Idle time.Duration
	// MaxScan bounds how many dead letters one operation reads (default
	// 10,000); Page.Truncated tells when there were more.
	MaxScan int
}

func (o Options) withDefaults() Options {
	if o.Wait <= 0 {
		o.Wait = 2 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 500 * time.Millisecond
	}
	if o.MaxScan <= 0 {
		o.MaxScan = 10_000
	}
	return o
}

// DeadLetters runs the dead-letter operations of one source.
//
// A queue is read by receiving every dead letter in it and holding them
// (each operation reads afresh, so listings are snapshots). What an
// operation does not take out is returned to the queue unchanged when it
// ends, so reading is safe alongside the routes that dead-letter.
type DeadLetters struct {
	bus  *crossbus.Bus
	src  Source
	opts Options
}

// NewDeadLetters returns the dead-letter operations of src on bus.
func NewDeadLetters(bus *crossbus.Bus, src Source, opts Options) (*DeadLetters, error) {
	if bus == nil {
		return nil, errorf("%w: NewDeadLetters needs a bus", crossbus.ErrInvalidOption)
	}
	if err := src.check(); err != nil {
		return nil, err
	}
	if opts.Wait < 0 || opts.Idle < 0 || opts.MaxScan < 0 {
		return nil, errorf("%w: negative read option", crossbus.ErrInvalidOption)
	}
	return &DeadLetters{bus: bus, src: src, opts: opts.withDefaults()}, nil
}

// Source returns where the dead letters are read.
func (d *DeadLetters) Source() Source { return d.src }

// logTopic is implemented by providers whose dead-letter queue is an
// append-only log (Kafka): a dead letter taken out behind one that stays
// would come back, so an operation that takes some out re-appends those
// that stay to the log's end and takes them out too.
type logTopic interface {
	DeadLetterQueueTopic(topic, subscription string) string
}

// item is a dead letter and the deliveries that hold it (more than one when
// the provider delivered it twice).
type item struct {
	dl DeadLetter
	ds []driver.Delivery
}

// scan is one read of the queue: every dead letter held until release.
type scan struct {
	d         *DeadLetters
	recv      driver.Receiver
	items     []*item
	byID      map[string]*item
	others    []driver.Delivery // held, not listed: other routes' dead letters
	truncated bool
	taken     bool // some dead letter was taken out (acked)

	// mu guards the deliveries: take, release and each lease renewal hold
	// it, so a renewal never reaches a delivery that was settled.
	mu       sync.Mutex
	stopKeep chan struct{}
	stopOnce sync.Once
	keepDone chan struct{}
}

// leaseEvery is how often, at most, a read renews the leases of the dead
// letters it holds (where the provider can), so they do not come back while
// it holds them; a receiver with a shorter lease is renewed at a third of
// it. leaseFor is how long each renewal asks for.
const (
	leaseEvery    = time.Second
	minLeaseEvery = 50 * time.Millisecond
	leaseFor      = 30 * time.Second
)

// renewEvery is how often the leases of recv's deliveries are renewed.
func renewEvery(bus *crossbus.Bus, recv driver.Receiver) time.Duration {
	lease := bus.Capabilities().DefaultAckDeadline
	if rc, ok := recv.(driver.ReceiverCapabilities); ok {
		lease = rc.Capabilities().DefaultAckDeadline
	}
	every := leaseEvery
	if lease > 0 && lease/3 < every {
		every = max(lease/3, minLeaseEvery)
	}
	return every
}

// held is one delivery a scan holds and the item it belongs to.
type held struct {
	it *item
	le driver.LeaseExtender
	dv driver.Delivery
}

// keepLeases renews the leases of held deliveries until release. Each
// renewal runs with mu held and only for a delivery still held: a renewal
// that reached the provider after the delivery was returned would hide it
// again (an SQS visibility change after the one that made it visible).
func (s *scan) keepLeases(every time.Duration) {
	defer close(s.keepDone)
	t := time.NewTicker(every)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopKeep:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-s.stopKeep:
			return
		case <-t.C:
		}
		s.mu.Lock()
		var hs []held
		for _, it := range s.items {
			for _, dv := range it.ds {
				if le, ok := dv.(driver.LeaseExtender); ok {
					hs = append(hs, held{it: it, le: le, dv: dv})
				}
			}
		}
		s.mu.Unlock()
		for _, h := range hs {
			select {
			case <-s.stopKeep:
				return
			default:
			}
			s.mu.Lock()
			if slices.Contains(h.it.ds, h.dv) {
				rctx, rcancel := context.WithTimeout(ctx, max(every, time.Second))
				_ = h.le.ExtendLease(rctx, leaseFor)
				rcancel()
			}
			s.mu.Unlock()
		}
	}
}

// read receives every dead letter in the queue, up to MaxScan.
func (d *DeadLetters) read(ctx context.Context) (*scan, error) {
	var recv driver.Receiver
	var err error
	if d.src.DeadLetterTopic != "" {
		recv, err = d.bus.Provider().Subscribe(ctx, driver.SubscriptionSpec{Topic: d.src.DeadLetterTopic, Name: d.src.DeadLetterSubscription})
		if err != nil {
			err = errorf("read %s: %w", d.src, err)
		}
	} else {
		recv, err = d.bus.DeadLetters(ctx, d.src.Topic, d.src.Subscription)
		if err != nil {
			err = errorf("%w", err) // the root's error names the route
		}
	}
	if err != nil {
		return nil, err
	}
	s := &scan{d: d, recv: recv, byID: map[string]*item{}, stopKeep: make(chan struct{}), keepDone: make(chan struct{})}
	go s.keepLeases(renewEvery(d.bus, recv))
	buf := make([]driver.Delivery, 64)
	wait := d.opts.Wait
	for {
		if len(s.items) >= d.opts.MaxScan {
			s.truncated = true
			break
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		n, err := recv.Receive(rctx, buf[:min(len(buf), d.opts.MaxScan-len(s.items))])
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				s.release(ctx)
				return nil, errorf("read %s: %w", d.src, ctx.Err())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				break // quiet: everything was read
			}
			s.release(ctx)
			return nil, errorf("read %s: %w", d.src, err)
		}
		for _, dv := range buf[:n] {
			s.add(dv)
		}
		wait = d.opts.Idle
	}
	s.sort()
	return s, nil
}

func (s *scan) add(dv driver.Delivery) {
	dl := fromEvent(dv.Event(), s.d.src)
	s.mu.Lock()
	defer s.mu.Unlock()
	if src := s.d.src; src.DeadLetterTopic != "" && src.Subscription != "" &&
		(dl.Subscription != src.Subscription || src.Topic != "" && dl.Topic != src.Topic) {
		s.others = append(s.others, dv) // another route's dead letter in a shared topic
		return
	}
	if it, ok := s.byID[dl.ID]; ok {
		it.ds = append(it.ds, dv)
		return
	}
	it := &item{dl: dl, ds: []driver.Delivery{dv}}
	s.items = append(s.items, it)
	s.byID[dl.ID] = it
}

// sort orders dead letters by dead-letter time, then id.
func (s *scan) sort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(s.items, func(a, b *item) int {
		if c := a.dl.LastFailure.Compare(b.dl.LastFailure); c != 0 {
			return c
		}
		return strings.Compare(a.dl.ID, b.dl.ID)
	})
}

// take removes a dead letter from the queue (after its event was
// re-published, or to purge it).
func (s *scan) take(ctx context.Context, it *item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	acked := false
	for _, dv := range it.ds {
		if err := dv.Ack(ctx); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		acked = true
	}
	it.ds = nil
	delete(s.byID, it.dl.ID)
	s.taken = true
	if !acked && first != nil {
		return errorf("remove dead letter %s: %w", it.dl.ID, first)
	}
	return nil
}

// release returns every dead letter not taken out to the queue and closes
// the receiver. It runs even when ctx has ended.
//
// Lease renewal stops first (one in flight is cancelled and waited for), so
// no renewal follows a return. Then a receiver that pulls ahead stops
// pulling (driver.ReceiveStopper: NATS), so that it is not handed back
// what is returned next. The dead letters are returned before the receiver
// closes: a receiver's deliveries are settled while it is open (Service
// Bus settles on the link that received a message, and refuses once it
// closed; Pub/Sub returns at Close what is unsettled, and refuses a second
// settlement), and closing then gives back what the receiver took
// meanwhile (a long poll that outlived its Receive).
func (s *scan) release(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopKeep) })
	<-s.keepDone
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	if st, ok := s.recv.(driver.ReceiveStopper); ok {
		errs = append(errs, st.StopReceiving(ctx))
	}
	lt, isLog := s.d.bus.Provider().(logTopic)
	if s.taken && isLog {
		errs = append(errs, s.rewrite(ctx, lt))
	}
	if !isLog && s.d.src.DeadLetterTopic != "" {
		errs = append(errs, s.refresh(ctx))
	}
	for _, it := range s.items {
		for _, dv := range it.ds {
			if err := dv.Nack(ctx, 0); err != nil {
				errs = append(errs, err)
			}
		}
		it.ds = nil
	}
	for _, dv := range s.others {
		if err := dv.Nack(ctx, 0); err != nil {
			errs = append(errs, err)
		}
	}
	s.others = nil
	errs = append(errs, s.recv.Close(ctx))
	return errors.Join(errs...)
}

// refreshAt is the delivery count from which a read of a dead-letter topic
// re-publishes a dead letter it returns (see Source.DeadLetterTopic).
const refreshAt = 5

// refresh re-publishes to the dead-letter topic, unchanged, the dead letters
// that stay and were delivered refreshAt times or more, and takes the
// originals out. Every read counts a delivery of each dead letter in the
// subscription it reads, and a subscription that counts deliveries drops or
// moves a message at its maximum (Event Grid: at most 10; Service Bus: 10
// by default; SQS: the queue's maxReceiveCount): without this, listing the
// dead letters a few times would lose them. The copy is the same event, so
// its ID is the same. If the publish fails the originals stay (and a
// dead letter published but not taken out is there twice, with one ID:
// reads show it once and operations take out both).
func (s *scan) refresh(ctx context.Context) error {
	var evs []*crossbus.Event
	var done [][]driver.Delivery
	due := func(ds []driver.Delivery) bool {
		for _, dv := range ds {
			if dv.Attempt() >= refreshAt {
				return true
			}
		}
		return false
	}
	var items []*item
	for _, it := range s.items {
		if due(it.ds) {
			evs = append(evs, it.ds[0].Event())
			done = append(done, it.ds)
			items = append(items, it)
		}
	}
	var others []driver.Delivery
	for _, dv := range s.others {
		if dv.Attempt() >= refreshAt {
			evs = append(evs, dv.Event())
			done = append(done, []driver.Delivery{dv})
		} else {
			others = append(others, dv)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	if err := s.d.bus.Provider().Publish(ctx, s.d.src.DeadLetterTopic, evs); err != nil {
		return errorf("re-publish %d dead letter(s) delivered %d times or more to %s: %w", len(evs), refreshAt, s.d.src, err)
	}
	var first error
	for _, ds := range done {
		for _, dv := range ds {
			if err := dv.Ack(ctx); err != nil && first == nil {
				first = err
			}
		}
	}
	for _, it := range items {
		it.ds = nil
	}
	s.others = others
	if first != nil {
		return errorf("take out re-published dead letters of %s: %w", s.d.src, first)
	}
	return nil
}

// rewrite re-appends the dead letters that stay to the end of a log-shaped
// queue and takes the originals out, so that the ones taken out do not come
// back. A crash in between leaves a dead letter twice (same ID); reads show
// it once and operations take out both.
func (s *scan) rewrite(ctx context.Context, lt logTopic) error {
	var stay []*crossbus.Event
	var items []*item
	for _, it := range s.items {
		if len(it.ds) > 0 {
			stay = append(stay, it.ds[0].Event())
			items = append(items, it)
		}
	}
	if len(stay) == 0 {
		return nil
	}
	topic := s.d.src.DeadLetterTopic
	if topic == "" {
		topic = lt.DeadLetterQueueTopic(s.d.src.Topic, s.d.src.Subscription)
	}
	if err := s.d.bus.Provider().Publish(ctx, topic, stay); err != nil {
		return errorf("keep dead letters in %s: %w", s.d.src, err)
	}
	for _, it := range items {
		for _, dv := range it.ds {
			_ = dv.Ack(ctx)
		}
		it.ds = nil
	}
	return nil
}

// fromEvent reads a dead letter's description from its event.
func fromEvent(e *crossbus.Event, src Source) DeadLetter {
	info, _ := crossbus.DeadLetterInfoOf(e)
	dl := DeadLetter{Event: e.Clone(), Reason: info.Reason, Attempts: info.Attempts, Topic: info.Topic,
		Subscription: info.Subscription, LastFailure: info.Time}
	if dl.Topic == "" {
		dl.Topic = src.Topic
	}
	if dl.Subscription == "" {
		dl.Subscription = src.Subscription
	}
	dl.FirstFailure = dl.LastFailure
	if s := crossbus.ExtensionString(e, ExtFirstDeadLetter); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			dl.FirstFailure = t
		}
	}
	dl.Redriven, _ = strconv.Atoi(crossbus.ExtensionString(e, ExtRedriven))
	dl.Cause = NormalizeReason(dl.Reason)
	dl.Group = groupID(dl.Topic, dl.Subscription, dl.Cause)
	dl.ID = DeadLetterID(e.Source(), e.ID(), dl.Subscription, dl.LastFailure)
	return dl
}

// DeadLetterID is the stable id of a dead letter: the event's source and id,
// the subscription that gave up on it and when, URL-safe.
func DeadLetterID(source, id, subscription string, at time.Time) string {
	raw := source + "\x00" + id + "\x00" + subscription + "\x00" + at.UTC().Format(time.RFC3339Nano)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// checkID refuses ids that no dead letter can have.
func checkID(id string) error {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || strings.Count(string(raw), "\x00") != 3 {
		return errorf("%w: %q is not a dead-letter id", crossbus.ErrInvalidOption, id)
	}
	return nil
}

// ListOptions select a page of dead letters.
type ListOptions struct {
	// Group limits the listing to one group (Group.ID).
	Group string
	// Limit is the page size (default 50, at most 1000).
	Limit int
	// Page is the token of the page to read (Page.Next of the previous
	// one); "" reads the first.
	Page string
}

// Page is one page of dead letters, oldest first.
type Page struct {
	Items []DeadLetter `json:"items"`
	// Total is how many dead letters the listing has (in the group when
	// one was asked for).
	Total int `json:"total"`
	// Next is the token of the next page, "" after the last.
	Next string `json:"next,omitempty"`
	// Truncated is true when the queue held more than Options.MaxScan.
	Truncated bool `json:"truncated,omitempty"`
}

// List returns a page of dead letters, oldest first.
func (d *DeadLetters) List(ctx context.Context, o ListOptions) (Page, error) {
	if o.Limit < 0 || o.Limit > 1000 {
		return Page{}, errorf("%w: limit %d is outside 1–1000", crossbus.ErrInvalidOption, o.Limit)
	}
	if o.Limit == 0 {
		o.Limit = 50
	}
	offset := 0
	if o.Page != "" {
		n, err := strconv.Atoi(o.Page)
		if err != nil || n < 0 {
			return Page{}, errorf("%w: page token %q is not one List returned", crossbus.ErrInvalidOption, o.Page)
		}
		offset = n
	}
	s, err := d.read(ctx)
	if err != nil {
		return Page{}, err
	}
	defer s.release(ctx)
	var all []DeadLetter
	for _, it := range s.items {
		if o.Group == "" || it.dl.Group == o.Group {
			all = append(all, it.dl)
		}
	}
	if o.Group != "" && len(all) == 0 {
		return Page{}, errorf("%w: no group %q in %s", ErrNotFound, o.Group, d.src)
	}
	p := Page{Total: len(all), Truncated: s.truncated, Items: []DeadLetter{}}
	if offset < len(all) {
		end := min(offset+o.Limit, len(all))
		p.Items = all[offset:end]
		if end < len(all) {
			p.Next = strconv.Itoa(end)
		}
	}
	return p, nil
}

// Groups returns the dead letters grouped by cause, largest group first.
func (d *DeadLetters) Groups(ctx context.Context) ([]Group, error) {
	s, err := d.read(ctx)
	if err != nil {
		return nil, err
	}
	defer s.release(ctx)
	return groupsOf(s.items), nil
}

func groupsOf(items []*item) []Group {
	byID := map[string]*Group{}
	var order []*Group
	for _, it := range items {
		dl := it.dl
		g, ok := byID[dl.Group]
		if !ok {
			g = &Group{ID: dl.Group, Cause: dl.Cause, Topic: dl.Topic, Subscription: dl.Subscription,
				Example: dl.Reason, FirstFailure: dl.FirstFailure, LastFailure: dl.LastFailure}
			byID[dl.Group] = g
			order = append(order, g)
		}
		g.Count++
		if dl.FirstFailure.Before(g.FirstFailure) {
			g.FirstFailure = dl.FirstFailure
		}
		if dl.LastFailure.After(g.LastFailure) {
			g.LastFailure = dl.LastFailure
		}
	}
	out := make([]Group, len(order))
	for i, g := range order {
		out[i] = *g
	}
	slices.SortStableFunc(out, func(a, b Group) int { return b.Count - a.Count })
	return out
}

// Get returns one dead letter by its ID.
func (d *DeadLetters) Get(ctx context.Context, id string) (DeadLetter, error) {
	if err := checkID(id); err != nil {
		return DeadLetter{}, err
	}
	s, err := d.read(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	defer s.release(ctx)
	it, ok := s.byID[id]
	if !ok {
		return DeadLetter{}, errorf("%w: no dead letter %s in %s", ErrNotFound, id, d.src)
	}
	return it.dl, nil
}

// Selection names the dead letters an operation acts on: exactly one of
// IDs, Group or All.
type Selection struct {
	IDs   []string `json:"ids,omitempty"`
	Group string   `json:"group,omitempty"`
	All   bool     `json:"all,omitempty"`
}

func (sel Selection) check() error {
	n := 0
	if len(sel.IDs) > 0 {
		n++
		for _, id := range sel.IDs {
			if err := checkID(id); err != nil {
				return err
			}
		}
	}
	if sel.Group != "" {
		n++
	}
	if sel.All {
		n++
	}
	if n != 1 {
		return errorf("%w: select dead letters by ids, by group or all (exactly one)", crossbus.ErrInvalidOption)
	}
	return nil
}

// pick returns the selected dead letters, or ErrNotFound naming what is
// missing (and then selects nothing).
func (s *scan) pick(sel Selection) ([]*item, error) {
	switch {
	case sel.All:
		return append([]*item(nil), s.items...), nil
	case sel.Group != "":
		var out []*item
		for _, it := range s.items {
			if it.dl.Group == sel.Group {
				out = append(out, it)
			}
		}
		if len(out) == 0 {
			return nil, errorf("%w: no group %q in %s", ErrNotFound, sel.Group, s.d.src)
		}
		return out, nil
	default:
		var out []*item
		var missing []string
		for _, id := range sel.IDs {
			it, ok := s.byID[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			if !slices.Contains(out, it) {
				out = append(out, it)
			}
		}
		if len(missing) > 0 {
			return nil, errorf("%w: no dead letter %s in %s", ErrNotFound, strings.Join(missing, ", "), s.d.src)
		}
		return out, nil
	}
}

// Progress reports how far an operation is.
type Progress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// RedriveOptions tune a redrive.
type RedriveOptions struct {
	// To re-publishes to this topic instead of each dead letter's origin
	// topic.
	To string
	// Rate is how many events per second are re-published (required, > 0).
	Rate float64
	// AllSubscriptions re-publishes to the origin topic for every
	// subscription of it. By default a redrive to the origin topic is
	// handled only by the subscription that gave up on the event
	// (ExtTargetSubscription).
	AllSubscriptions bool
	// Progress, when set, is called after each event.
	Progress func(Progress)
}

// Result is what an operation did.
type Result struct {
	// Selected is how many dead letters were selected; Done how many were
	// moved (redrive) or removed (purge). The others are still in the queue.
	Selected int `json:"selected"`
	Done     int `json:"done"`
	// IDs are the dead letters moved or removed.
	IDs []string `json:"ids"`
}

// Redrive re-publishes the selected dead letters, each to its origin topic
// (or RedriveOptions.To), without the dead-letter extensions and with
// ExtRedriven counted up, at most Rate per second. A dead letter leaves the
// queue only after its event was published; if ctx ends or a publish fails
// the rest stay in the queue, and the error says how many were moved.
func (d *DeadLetters) Redrive(ctx context.Context, sel Selection, o RedriveOptions) (Result, error) {
	if err := sel.check(); err != nil {
		return Result{}, err
	}
	if !(o.Rate > 0) {
		return Result{}, errorf("%w: redrive rate must be above 0 events per second, got %v", crossbus.ErrInvalidOption, o.Rate)
	}
	if o.To != "" {
		if err := crossbus.ValidateName(o.To); err != nil {
			return Result{}, errorf("redrive to: %w", err)
		}
	}
	s, err := d.read(ctx)
	if err != nil {
		return Result{}, err
	}
	items, err := s.pick(sel)
	if err != nil {
		return Result{}, errors.Join(err, s.release(ctx))
	}
	res := Result{Selected: len(items), IDs: []string{}}
	if o.To == "" {
		for _, it := range items {
			if it.dl.Topic == "" {
				return Result{}, errors.Join(errorf("%w: dead letter %s names no origin topic; redrive it with To", crossbus.ErrInvalidOption, it.dl.ID), s.release(ctx))
			}
		}
	}
	pace := newPacer(o.Rate)
	var opErr error
	for _, it := range items {
		if err := pace.wait(ctx); err != nil {
			opErr = err
			break
		}
		topic := o.To
		if topic == "" {
			topic = it.dl.Topic
		}
		ev := redriven(&it.dl, topic, o)
		if err := d.bus.Publish(ctx, topic, &ev); err != nil {
			opErr = fmt.Errorf("publish %s to %q: %w", it.dl.ID, topic, err)
			break
		}
		if err := s.take(ctx, it); err != nil {
			opErr = err
			break
		}
		res.Done++
		res.IDs = append(res.IDs, it.dl.ID)
		if o.Progress != nil {
			o.Progress(Progress{Done: res.Done, Total: res.Selected})
		}
	}
	relErr := s.release(ctx)
	if opErr != nil {
		return res, errorf("redrive stopped after %d of %d (the rest stay dead-lettered): %w", res.Done, res.Selected, errors.Join(opErr, relErr))
	}
	return res, relErr
}

// redriven is the event a dead letter is redriven as.
func redriven(dl *DeadLetter, topic string, o RedriveOptions) crossbus.Event {
	ev := dl.Event.Clone()
	for _, name := range []string{driver.ExtDeadLetterReason, driver.ExtDeadLetterAttempts, driver.ExtDeadLetterTopic,
		driver.ExtDeadLetterSubscription, driver.ExtDeadLetterTime, ExtTargetSubscription} {
		ev.SetExtension(name, nil)
	}
	ev.SetExtension(ExtRedriven, int32(min(dl.Redriven+1, 1<<31-1)))
	if !dl.FirstFailure.IsZero() {
		ev.SetExtension(ExtFirstDeadLetter, dl.FirstFailure.UTC().Format(time.RFC3339Nano))
	}
	if !o.AllSubscriptions && topic == dl.Topic && dl.Subscription != "" {
		ev.SetExtension(ExtTargetSubscription, dl.Subscription)
	}
	return ev
}

// PurgeOptions tune a purge.
type PurgeOptions struct {
	// Progress, when set, is called after each removal.
	Progress func(Progress)
}

// Purge removes the selected dead letters for good.
func (d *DeadLetters) Purge(ctx context.Context, sel Selection, o PurgeOptions) (Result, error) {
	if err := sel.check(); err != nil {
		return Result{}, err
	}
	s, err := d.read(ctx)
	if err != nil {
		return Result{}, err
	}
	items, err := s.pick(sel)
	if err != nil {
		return Result{}, errors.Join(err, s.release(ctx))
	}
	res := Result{Selected: len(items), IDs: []string{}}
	var opErr error
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			opErr = err
			break
		}
		if err := s.take(ctx, it); err != nil {
			opErr = err
			break
		}
		res.Done++
		res.IDs = append(res.IDs, it.dl.ID)
		if o.Progress != nil {
			o.Progress(Progress{Done: res.Done, Total: res.Selected})
		}
	}
	relErr := s.release(ctx)
	if opErr != nil {
		return res, errorf("purge stopped after %d of %d: %w", res.Done, res.Selected, errors.Join(opErr, relErr))
	}
	return res, relErr
}

// pacer spaces events at a rate.
type pacer struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	return &pacer{every: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.every)
	p.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}
