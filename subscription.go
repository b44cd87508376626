package crossbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Subscription is a running consumer of one subscription: it receives
// deliveries, runs the handler with bounded concurrency, and settles each
// delivery by the delivery contract. Stop it with Close.
type Subscription struct {
	bus     *Bus
	topic   string
	name    string
	cfg     routeConfig
	caps    Capabilities
	recv    Receiver
	handler Handler
	log     *slog.Logger

	recvCtx    context.Context    // cancelled to stop receiving
	stopRecv   context.CancelFunc //
	handlerCtx context.Context    // cancelled when the drain deadline passes
	abort      context.CancelFunc
	settleCtx  context.Context // for settling; not cancelled by shutdown

	wg          sync.WaitGroup // workers (and the ordered dispatcher)
	extWG       sync.WaitGroup // the lease extender
	workersDone chan struct{}  // closed when wg is done
	leases      leaseSet       // unordered: what each worker holds
	sched       *keyScheduler  // ordered: per-key queues
	closeOnce   sync.Once
	closeErr    error
	done        chan struct{}
	push        bool // an Endpoint: the platform retries, never in place
	tel         *subTelemetry

	// load controls
	clock   Clock
	limiter *RateLimiter
	breaker *breaker
	batch   *batchState // batch routes
}

// Subscribe starts consuming subscription of topic with h. It returns once the
// provider's receiver is open; handling runs in the background until Close
// (or the bus's Close). Options that are out of range are reported here.
func (b *Bus) Subscribe(ctx context.Context, topic, subscription string, h Handler, opts ...RouteOption) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler for subscription %q", ErrInvalidOption, subscription)
	}
	if topic == "" || subscription == "" {
		return nil, fmt.Errorf("%w: subscribe needs a topic and a subscription name (got %q, %q)", ErrInvalidOption, topic, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(false)
	}
	if err != nil {
		return nil, fmt.Errorf("subscription %q: %w", subscription, err)
	}
	return b.subscribe(ctx, topic, subscription, h, cfg)
}

func (b *Bus) subscribe(ctx context.Context, topic, name string, h Handler, cfg routeConfig) (*Subscription, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("crossbus: subscribe %q: %w", name, ErrClosed)
	}
	spec := SubscriptionSpec{Topic: topic, Name: name, Ordered: cfg.ordered, AckDeadline: cfg.ackDeadline,
		MaxAttempts: cfg.retry.MaxAttempts, DeadLetterTopic: cfg.deadLetterTopic, Filter: cfg.filter}
	recv, err := b.p.Subscribe(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("crossbus: subscribe %q to topic %q: %w", name, topic, err)
	}
	caps := b.caps
	if rc, ok := recv.(ReceiverCapabilities); ok {
		caps = rc.Capabilities()
	}
	if !caps.NativeDeadLetter && cfg.deadLetterTopic == "" {
		_ = recv.Close(ctx)
		return nil, fmt.Errorf("%w: subscription %q: the provider has no native dead-letter queue here; set WithDeadLetterTopic so failed events are kept",
			ErrInvalidOption, name)
	}
	if cfg.ackDeadline == 0 {
		cfg.ackDeadline = caps.DefaultAckDeadline
	}
	s := &Subscription{bus: b, topic: topic, name: name, cfg: cfg, caps: caps, recv: recv, log: b.log,
		done: make(chan struct{}), workersDone: make(chan struct{})}
	if cfg.batchHandler == nil {
		s.handler = s.buildHandler(h)
	}
	s.tel = b.tel.forSubscription(topic, name)
	s.initControls()
	s.recvCtx, s.stopRecv = context.WithCancel(context.WithoutCancel(ctx))
	s.handlerCtx, s.abort = context.WithCancel(context.WithoutCancel(ctx))
	// Handlers (and middleware that waits, like Resequence) can see that the
	// subscription stops receiving, without a per-event allocation.
	s.handlerCtx = context.WithValue(s.handlerCtx, stoppingKey{}, s.recvCtx.Done())
	s.settleCtx = context.WithoutCancel(ctx)

	b.mu.Lock()
	if b.isClosed() {
		b.mu.Unlock()
		_ = recv.Close(ctx)
		return nil, fmt.Errorf("crossbus: subscribe %q: %w", name, ErrClosed)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	switch {
	case cfg.batchHandler != nil:
		s.startBatch()
	case cfg.ordered:
		s.startOrdered()
	default:
		s.leases.init(cfg.concurrency)
		for i := 0; i < cfg.concurrency; i++ {
			s.wg.Add(1)
			go s.worker(i)
		}
	}
	if caps.LeaseExtension && cfg.ackDeadline > 0 {
		s.extWG.Add(1)
		go s.extendLeases()
	}
	go func() {
		s.wg.Wait()
		close(s.workersDone)
		s.extWG.Wait()
		close(s.done)
	}()
	return s, nil
}

// buildHandler fixes the order of the pipeline: recover outermost, then
// idempotency, then the route's middleware, then the handler. Retry and
// dead-lettering wrap all of it (see process), so no registration order can
// stop them from working.
func (s *Subscription) buildHandler(h Handler) Handler {
	h = Chain(h, s.cfg.middleware...)
	if s.cfg.idem != nil {
		h = idempotent(s.cfg.idem, s.name, s.log)(h)
	}
	return h
}

// Topic and Name identify the subscription.
func (s *Subscription) Topic() string { return s.topic }

// Name is the subscription's name.
func (s *Subscription) Name() string { return s.name }

// Done is closed once the subscription has stopped and drained.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close stops receiving, waits for in-flight handlers until ctx ends (or the
// drain timeout, when ctx has no deadline), then cancels the handlers still
// running. Events received but not handled are returned to the provider for
// redelivery. Close is idempotent.
func (s *Subscription) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.stopRecv()
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.cfg.drainTimeout)
			defer cancel()
		}
		select {
		case <-s.done:
		case <-ctx.Done():
			s.abort()
			<-s.done
			s.closeErr = fmt.Errorf("crossbus: subscription %q: drain incomplete, handlers cancelled: %w", s.name, ctx.Err())
		}
		s.abort()
		if err := s.recv.Close(s.settleCtx); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("crossbus: subscription %q: close receiver: %w", s.name, err)
		}
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
	})
	return s.closeErr
}

func (s *Subscription) stopping() bool { return s.recvCtx.Err() != nil }

// receiveCtx fills buf, retrying transient receive errors with backoff. It
// returns 0 once ctx (recvCtx or derived from it) ends or the subscription
// stops.
func (s *Subscription) receiveCtx(ctx context.Context, buf []Delivery) int {
	failures := 0
	for {
		n, err := s.recv.Receive(ctx, buf)
		if err == nil {
			return n
		}
		if ctx.Err() != nil || s.stopping() || errors.Is(err, ErrClosed) {
			return 0
		}
		failures++
		d := s.cfg.retry.Backoff(min(failures, 10))
		s.log.Error("crossbus: receive failed", "subscription", s.name, "error", err, "retryIn", d)
		if !sleepCtx(ctx, s.clock, d) {
			return 0
		}
	}
}

// sleep waits d on the route's clock or until the subscription stops; it
// reports whether the whole delay passed.
func (s *Subscription) sleep(d time.Duration) bool {
	return sleepCtx(s.recvCtx, s.clock, d)
}

// worker runs an unordered subscription's loop: take a batch, handle it.
func (s *Subscription) worker(slot int) {
	defer s.wg.Done()
	buf := make([]Delivery, s.cfg.prefetch)
	for {
		n := s.receiveGated(s.recvCtx, buf)
		if n == 0 {
			return
		}
		s.leases.hold(slot, buf[:n])
		for i := 0; i < n; i++ {
			if s.stopping() {
				s.returnAll(buf[i:n])
				break
			}
			s.process(s.handlerCtx, buf[i])
		}
		s.leases.hold(slot, nil)
		clear(buf[:n])
	}
}

// returnAll gives deliveries that were never started back to the provider.
func (s *Subscription) returnAll(ds []Delivery) {
	for _, d := range ds {
		s.nack(d, 0)
	}
}

// process runs one delivery to its settlement, in one consumer span. Handlers
// get a context derived from hctx.
func (s *Subscription) process(hctx context.Context, d Delivery) {
	e := d.Event()
	if s.cfg.filter != nil && !s.cfg.filter.Match(e) {
		s.ack(d)
		return
	}
	attempt := d.Attempt()
	if attempt < 1 {
		attempt = 1
	}
	ctx, span := s.tel.start(hctx, e, attempt)
	err := s.attempts(ctx, span, d, e, attempt)
	endSpan(span, err)
}

// attempts runs the handler until the delivery is settled; it returns the
// last handler error (nil once handled).
func (s *Subscription) attempts(ctx context.Context, span trace.Span, d Delivery, e *Event, attempt int) error {
	tel := s.tel
	for {
		permit, admitted := s.admit(d)
		if !admitted {
			return errBreakerOpen
		}
		start := time.Now()
		tel.t.inFlight.Add(ctx, 1, tel.addBase...)
		err := s.invoke(ctx, e, attempt)
		tel.t.inFlight.Add(ctx, -1, tel.addBase...)
		s.recordOutcome(ctx, permit, err)
		if err == nil {
			tel.handledOK(ctx, time.Since(start))
			s.ack(d)
			return nil
		}
		tel.handledErr(ctx, time.Since(start))
		if ctx.Err() != nil {
			s.nack(d, 0) // shut down mid-handler: leave it to the provider
			return err
		}
		inProgress := errors.Is(err, ErrInProgress)
		if !inProgress && (IsPermanent(err) || s.cfg.retry.Exhausted(attempt)) {
			s.deadLetter(ctx, span, d, err, attempt)
			return err
		}
		delay := s.cfg.retry.Backoff(attempt)
		tel.retry(ctx, span, attempt, delay, err)
		s.log.Info("crossbus: handler failed; will retry", s.attrs(d, attempt, "error", err, "retryIn", delay)...)
		if s.push || !s.cfg.ordered && s.caps.DelayedRedelivery && (s.caps.MaxRedeliveryDelay == 0 || delay <= s.caps.MaxRedeliveryDelay) {
			s.nack(d, delay)
			return err
		}
		// Retry in place: ordered routes (so no later event of the key
		// overtakes this one) and providers that cannot delay redelivery.
		if !s.sleep(delay) {
			s.nack(d, 0)
			return err
		}
		if !inProgress {
			attempt++
		}
	}
}

// invoke runs the handler once, turning a panic into an error.
func (s *Subscription) invoke(hctx context.Context, e *Event, attempt int) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	ctx := &deliveryContext{Context: hctx, info: DeliveryInfo{
		Topic: s.topic, Subscription: s.name, Attempt: attempt, MaxAttempts: s.cfg.retry.MaxAttempts}}
	return s.handler.Handle(ctx, e)
}

func (s *Subscription) ack(d Delivery) {
	if err := d.Ack(s.settleCtx); err != nil {
		s.log.Warn("crossbus: ack failed; the provider may redeliver", s.attrs(d, d.Attempt(), "error", err)...)
	}
}

func (s *Subscription) nack(d Delivery, delay time.Duration) {
	if err := d.Nack(s.settleCtx, delay); err != nil {
		s.log.Warn("crossbus: nack failed; the provider redelivers after the lease", s.attrs(d, d.Attempt(), "error", err)...)
	}
}

func (s *Subscription) attrs(d Delivery, attempt int, kv ...any) []any {
	e := d.Event()
	return append([]any{"subscription", s.name, "topic", s.topic, "eventID", e.ID(), "eventType", e.Type(), "source", e.Source(), "attempt", attempt}, kv...)
}
