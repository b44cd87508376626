package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

// errSettled is returned by a second settle call on one delivery.
var errSettled = errors.New("nats: delivery already settled")

// restartDelay is how long a receiver waits before pulling again after its
// pull subscription failed.
const restartDelay = time.Second

// drainWait bounds how long Close returns buffered messages to the server.
const drainWait = 5 * time.Second

// unpinWait bounds how long Close spends releasing an ordered consumer's pin.
const unpinWait = 2 * time.Second

// pinHeader carries, on every message of a pinned-client consumer, the id
// of the client the server pinned.
const pinHeader = "Nats-Pin-Id"

// Subscribe opens a receiver on a subscription's durable consumer (created
// when AutoCreate is on). A positive spec.AckDeadline becomes the consumer's
// AckWait, so lease extension (InProgress) renews exactly that lease.
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if spec.Topic == "" || spec.Name == "" {
		return nil, fmt.Errorf("%w: nats: subscribe needs a topic and a subscription name", driver.ErrInvalidOption)
	}
	if p.opts.MaxDeliver > 0 && spec.MaxAttempts >= p.opts.MaxDeliver {
		return nil, fmt.Errorf("%w: nats: subscription %q: the retry policy's MaxAttempts (%d) must be below the consumer's MaxDeliver (%d), or the server stops redelivering before the event is dead-lettered",
			driver.ErrInvalidOption, spec.Name, spec.MaxAttempts, p.opts.MaxDeliver)
	}
	ti, err := p.topic(ctx, spec.Topic, false)
	if err != nil {
		return nil, err
	}
	return p.openReceiver(ctx, spec, ti, consumerOpts{ordered: spec.Ordered, ackWait: spec.AckDeadline}, false)
}

func (p *Provider) openReceiver(ctx context.Context, spec driver.SubscriptionSpec, ti *topicInfo, o consumerOpts, dlq bool) (*receiver, error) {
	if p.isClosed() {
		return nil, fmt.Errorf("nats: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	cons, err := p.consumer(ctx, ti, spec.Name, o)
	if err != nil {
		return nil, err
	}
	cfg := cons.CachedInfo().Config
	if spec.Ordered && cfg.PriorityPolicy != jetstream.PriorityPolicyPinned {
		p.opts.Logger.Warn("nats: ordered subscription on a consumer without the pinned-client policy: order holds only while one process consumes it",
			"subscription", spec.Name, "consumer", cfg.Durable)
	}
	r := &receiver{
		p:        p,
		spec:     spec,
		dlq:      dlq,
		stream:   ti.stream,
		consumer: cfg.Durable,
		cons:     cons,
		pinned:   cfg.PriorityPolicy == jetstream.PriorityPolicyPinned,
		ch:       make(chan *delivery, 64),
		errs:     make(chan error, 1),
		closing:  make(chan struct{}),
		pumpDone: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.caps = p.Capabilities()
	r.caps.DefaultAckDeadline = cfg.AckWait
	if dlq {
		r.caps.NativeDeadLetter = false // no queue for the queue's readers
	}
	if err := r.open(); err != nil {
		r.cancel()
		return nil, fmt.Errorf("nats: subscription %q: %w", spec.Name, err)
	}
	if !p.receivers.Add(r) {
		r.it.Stop()
		r.cancel()
		return nil, fmt.Errorf("nats: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	go r.pump()
	return r, nil
}

// receiver pulls a consumer's messages into a small buffer that Receive
// empties. One goroutine (pump) pulls and decodes.
type receiver struct {
	p        *Provider
	spec     driver.SubscriptionSpec
	dlq      bool // a reader of a dead-letter queue
	stream   string
	consumer string // the durable consumer's name
	cons     jetstream.Consumer
	pinned   bool
	caps     driver.Capabilities

	pin       string       // the pin id this client was last given; written by pump, read by Close after pumpDone
	unsettled atomic.Int64 // deliveries made and not settled

	ctx    context.Context // cancelled by Close: ends a consumer lookup
	cancel context.CancelFunc

	mu  sync.Mutex // guards it and err
	it  jetstream.MessagesContext
	err error // why the pump stopped for good (nil: it was closed)

	ch        chan *delivery
	errs      chan error
	closing   chan struct{}
	pumpDone  chan struct{}
	stopOnce  sync.Once
	closeOnce sync.Once
}

func (r *receiver) open() error {
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(r.p.opts.Prefetch)}
	if r.pinned {
		// Pull often enough that the pinned client never looks idle.
		opts = append(opts, jetstream.PullPriorityGroup(priorityGroup),
			jetstream.PullExpiry(max(r.p.opts.PinnedTTL/3, time.Second)))
	}
	it, err := r.cons.Messages(opts...)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.isClosing() { // Close already stopped the previous one
		r.mu.Unlock()
		it.Stop()
		return driver.ErrClosed
	}
	r.it = it
	r.mu.Unlock()
	return nil
}

// Capabilities reports the provider's capabilities with this consumer's
// AckWait as the default ack deadline.
func (r *receiver) Capabilities() driver.Capabilities { return r.caps }

func (r *receiver) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// pump moves messages from the pull subscription to the receive buffer.
// When a pull fails it finds out whether pulling again can work (see
// permanent): if not, it stops, and Receive returns why from then on.
func (r *receiver) pump() {
	defer close(r.pumpDone)
	for {
		r.mu.Lock()
		it := r.it
		r.mu.Unlock()
		msg, err := it.Next()
		if err != nil {
			if r.isClosing() {
				return
			}
			if perr := r.permanent(r.ctx, err); perr != nil {
				if r.isClosing() {
					return
				}
				r.stop(perr)
				it.Stop()
				return
			}
			r.p.opts.Logger.Warn("nats: pull failed; pulling again", "subscription", r.spec.Name, "consumer", r.consumer, "stream", r.stream, "error", err)
			r.report(fmt.Errorf("nats: subscription %q: pull failed: %w", r.spec.Name, err))
			it.Stop()
			if !r.wait(restartDelay) {
				return
			}
			if err := r.open(); errors.Is(err, driver.ErrClosed) {
				return
			} else if err != nil {
				r.report(fmt.Errorf("nats: subscription %q: pull again: %w", r.spec.Name, err))
			}
			continue
		}
		if r.pinned {
			if id := msg.Headers().Get(pinHeader); id != "" && id != r.pin {
				r.pin = id
			}
		}
		d := r.newDelivery(msg)
		select {
		case r.ch <- d:
		case <-r.closing:
			_ = d.Nack(context.Background(), 0)
		}
	}
}

// stop records the error that ended the pump for good.
func (r *receiver) stop(err error) {
	r.p.opts.Logger.Error("nats: subscription cannot receive any more", "subscription", r.spec.Name, "consumer", r.consumer, "stream", r.stream, "error", err)
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// stopped is what Receive returns once the pump ended: its error, or
// ErrClosed.
func (r *receiver) stopped() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil && !r.isClosing() {
		return r.err
	}
	return fmt.Errorf("nats: receive from %q: %w", r.spec.Name, driver.ErrClosed)
}

// report hands an error to the next Receive call, dropping it if one is
// already waiting.
func (r *receiver) report(err error) {
	select {
	case r.errs <- err:
	default:
	}
}

func (r *receiver) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.closing:
		return false
	}
}

// Receive waits for at least one delivery and returns up to len(buf).
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if r.isClosing() {
		return 0, fmt.Errorf("nats: receive from %q: %w", r.spec.Name, driver.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case d := <-r.ch:
		buf[0] = d
	case err := <-r.errs:
		return 0, err
	case <-r.closing:
		return 0, fmt.Errorf("nats: receive from %q: %w", r.spec.Name, driver.ErrClosed)
	case <-r.pumpDone:
		return 0, r.stopped()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n := 1
	for n < len(buf) {
		select {
		case d := <-r.ch:
			buf[n] = d
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Close stops pulling and returns every buffered, unhandled message to the
// server at once (Nak), so other consumers get them without waiting for the
// ack wait. Deliveries already handed out stay valid for settling.
//
// On an ordered (pinned-client) consumer, a client that holds the pin and
// has settled everything it was handed releases the pin (unpin), so another
// client takes over at once instead of after Options.PinnedTTL. A client
// with deliveries still unsettled (a handler that outlived the drain) keeps
// it: the pin then expires after PinnedTTL, and the events come back after
// their ack wait, as after a crash.
func (r *receiver) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		_ = r.StopReceiving(ctx)
		if r.pinned && r.pin != "" && r.unsettled.Load() == 0 && r.p.conn.IsConnected() && ctx.Err() == nil {
			if err := r.unpin(ctx); err != nil {
				r.p.opts.Logger.Warn("nats: could not release the ordered consumer's pin; another client takes over after the pinned TTL",
					"subscription", r.spec.Name, "consumer", r.consumer, "stream", r.stream, "pinnedTTL", r.p.opts.PinnedTTL, "error", err)
			}
		}
		r.p.receivers.Remove(r)
		if r.dlq {
			r.p.dlqReaderClosed(r.stream)
		}
	})
	return nil
}

var _ driver.ReceiveStopper = (*receiver)(nil)

// StopReceiving implements driver.ReceiveStopper: it stops pulling and
// returns the buffered messages (Nak), as Close does, so that what the
// deliveries handed out give back is not pulled by this receiver again.
// Those deliveries stay valid for settling; Close must still be called.
func (r *receiver) StopReceiving(ctx context.Context) error {
	r.stopOnce.Do(func() {
		close(r.closing)
		r.cancel()
		r.mu.Lock()
		it := r.it
		r.mu.Unlock()
		if r.p.conn.IsConnected() {
			// Buffered messages come out of Next and are returned (Nak).
			it.Drain()
			t := time.NewTimer(drainWait)
			select {
			case <-r.pumpDone:
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		it.Stop()
		<-r.pumpDone
		for {
			select {
			case d := <-r.ch:
				_ = d.Nack(context.Background(), 0)
				continue
			default:
			}
			break
		}
	})
	return nil
}

// unpin releases the consumer's pin if this client still holds it. A pin
// another client holds (this one was a standby, or lost the pin while it
// stalled) is left alone.
func (r *receiver) unpin(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, unpinWait)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("nats: read consumer %q of stream %q: %w", r.consumer, r.stream, err)
	}
	held := false
	for _, g := range info.PriorityGroups {
		if g.Group == priorityGroup && g.PinnedClientID == r.pin {
			held = true
		}
	}
	if !held {
		return nil
	}
	s, err := r.p.js.Stream(ctx, r.stream)
	if err != nil {
		return fmt.Errorf("nats: stream %q: %w", r.stream, err)
	}
	if err := s.UnpinConsumer(ctx, r.consumer, priorityGroup); err != nil {
		return fmt.Errorf("nats: unpin consumer %q of stream %q: %w", r.consumer, r.stream, err)
	}
	return nil
}

// delivery is one JetStream message handed to a consumer.
type delivery struct {
	r         *receiver
	msg       jetstream.Msg
	ev        driver.Event
	ctx       event.EventContextV1 // ev.Context points here (decoded messages)
	attempt   int
	decodeErr error // why the message is not a CloudEvent (nil when it is one)
	settled   atomic.Bool
}

// newDelivery decodes a message. A message that is not a CloudEvent (or is
// a malformed one) becomes an undecodable delivery: its event is the
// driver.NewUndecodableEvent placeholder (id "<stream>-<sequence>", source
// "/nats/streams/<stream>", subject the message's subject, the payload as
// data, the headers in the rawheaders extension with repeated values joined
// by ", "), and the portable layer dead-letters it.
func (r *receiver) newDelivery(msg jetstream.Msg) *delivery {
	r.unsettled.Add(1)
	d := &delivery{r: r, msg: msg, attempt: 1}
	d.ev.Context = &d.ctx
	md, _ := msg.Metadata()
	if md != nil && md.NumDelivered > 0 {
		d.attempt = int(min(md.NumDelivered, 1<<31-1))
	}
	if err := r.p.codec.Decode(msg.Headers(), msg.Data(), &d.ev); err != nil {
		d.decodeErr = err
		var id string
		if md != nil {
			id = r.stream + "-" + strconv.FormatUint(md.Sequence.Stream, 10)
		}
		var hs map[string]string
		if h := msg.Headers(); len(h) > 0 {
			hs = make(map[string]string, len(h))
			for k, vs := range h {
				hs[k] = strings.Join(vs, ", ")
			}
		}
		d.ev = driver.NewUndecodableEvent(id, "/nats/streams/"+r.stream, msg.Data(), hs)
		d.ev.SetSubject(msg.Subject())
	}
	return d
}

// settle marks the delivery settled; false if it already was.
func (d *delivery) settle() bool {
	if !d.settled.CompareAndSwap(false, true) {
		return false
	}
	d.r.unsettled.Add(-1)
	return true
}

// DecodeError says why the message is not a CloudEvent (nil when it is one).
func (d *delivery) DecodeError() error { return d.decodeErr }

// Event returns the delivered event.
func (d *delivery) Event() *driver.Event { return &d.ev }

// Attempt is JetStream's delivery count for the message.
func (d *delivery) Attempt() int { return d.attempt }

// Ack acknowledges the message.
func (d *delivery) Ack(context.Context) error {
	if !d.settle() {
		return errSettled
	}
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("nats: ack event %q: %w", d.ev.ID(), err)
	}
	return nil
}

// Nack returns the message for redelivery after delay (NakWithDelay).
func (d *delivery) Nack(_ context.Context, delay time.Duration) error {
	if !d.settle() {
		return errSettled
	}
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("nats: nak event %q: %w", d.ev.ID(), err)
	}
	return nil
}

// DeadLetter moves the event to the subscription's dead-letter queue (see
// DeadLetterTopic): the event, with the dead-letter extensions, is stored in
// the queue's stream first and the message acknowledged after. A crash in
// between dead-letters the event again on redelivery, and the queue's stream
// drops that copy by Nats-Msg-Id.
func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	if d.settled.Load() && !d.r.dlq { // a dead letter's reader is refused below, settled or not
		return errSettled
	}
	err := providerkit.DeadLetterQueue(ctx, "nats", d.r.dlq, &d.ev, info, func(ctx context.Context, dl *driver.Event) error {
		return d.r.p.publishDeadLetter(ctx, d.r.spec.Topic, d.r.spec.Name, dl)
	})
	if err != nil {
		return err
	}
	if !d.settle() {
		return errSettled
	}
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("nats: ack dead-lettered event %q: %w", d.ev.ID(), err)
	}
	return nil
}

// ExtendLease tells the server the handler is still working (InProgress),
// which restarts the consumer's ack wait.
func (d *delivery) ExtendLease(context.Context, time.Duration) error {
	if d.settled.Load() {
		return errSettled
	}
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("nats: extend lease of event %q: %w", d.ev.ID(), err)
	}
	return nil
}

var (
	_ driver.Delivery             = (*delivery)(nil)
	_ driver.LeaseExtender        = (*delivery)(nil)
	_ driver.Undecodable          = (*delivery)(nil)
	_ driver.ReceiverCapabilities = (*receiver)(nil)
	_ driver.Provider             = (*Provider)(nil)
)
