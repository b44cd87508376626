package crossbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus/driver"
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
	caps    driver.Capabilities
	recv    driver.Receiver
	handler Handler
	log     *slog.Logger

	recvCtx    context.Context    // cancelled to stop receiving
	stopRecv   context.CancelFunc //
	handlerCtx context.Context    // cancelled when the drain ends
	abort      context.CancelFunc
	settleCtx  context.Context // for settling; not cancelled by shutdown

	wg          sync.WaitGroup // every goroutine that runs handlers or receives
	workersDone chan struct{}  // closed when wg is done
	houseDone   chan struct{}  // closed when the housekeeping goroutine ends
	leases      leaseSet       // what running handlers hold
	pool        *pool          // unordered routes
	sched       *keyScheduler  // ordered routes
	batch       *batchState    // batch routes
	push        bool           // an Endpoint: the platform retries, never in place
	tel         *subTelemetry
	stats       *routeStats

	native           driver.NativeFilter // what the provider filters before delivering
	filteredNatively bool                // native is exactly the route's pattern

	running   atomic.Int64 // handlers running now
	abandoned atomic.Bool  // shutdown gave up on running handlers: their results are ignored

	shutdownOnce sync.Once
	abandonOnce  sync.Once
	abandonReq   chan struct{}   // closed to end the drain at once
	stopped      chan struct{}   // closed when the shutdown begins
	stoppingCh   <-chan struct{} // recvCtx.Done(), for DeliveryInfo.Stopping (nil on endpoints)
	closeStart   time.Time
	mu           sync.Mutex // guards err and closeErr
	err          error      // why the subscription stopped on its own (nil if closed)
	closeErr     error
	done         chan struct{}

	// load controls
	clock   Clock
	limiter *RateLimiter
	breaker *breaker
}

// Subscribe starts consuming subscription of topic with h. It returns once the
// provider's receiver is open; handling runs in the background until Close
// (or the bus's Close), or until the provider reports an error retrying
// cannot fix (see Err). Options that are out of range are reported here.
func (b *Bus) Subscribe(ctx context.Context, topic, subscription string, h Handler, opts ...RouteOption) (*Subscription, error) {
	if h == nil {
		return nil, errorf("%w: nil handler for subscription %q", ErrInvalidOption, subscription)
	}
	cfg, err := buildRouteConfig(opts)
	if err == nil {
		err = cfg.checkKind(false)
	}
	if err == nil {
		err = checkNames(topic, subscription)
	}
	if err != nil {
		return nil, errorf("subscription %q: %w", subscription, err)
	}
	return b.subscribe(ctx, topic, subscription, h, cfg)
}

func (b *Bus) subscribe(ctx context.Context, topic, name string, h Handler, cfg routeConfig) (*Subscription, error) {
	if b.isClosed() {
		return nil, errorf("%w: subscribe %q", ErrClosed, name)
	}
	spec := driver.SubscriptionSpec{Topic: topic, Name: name, Ordered: cfg.ordered, AckDeadline: cfg.ackDeadline,
		MaxAttempts: cfg.retry.MaxAttempts, DeadLetterTopic: cfg.deadLetterTopic, FilterPattern: patternOf(cfg.filter)}
	recv, err := b.p.Subscribe(ctx, spec)
	if err != nil {
		return nil, errorf("subscribe %q to topic %q: %w", name, topic, err)
	}
	caps := b.caps
	if rc, ok := recv.(driver.ReceiverCapabilities); ok {
		caps = rc.Capabilities()
	}
	var native driver.NativeFilter
	if nf, ok := recv.(driver.NativeFiltering); ok {
		native = nf.NativeFilter()
	}
	if !caps.NativeDeadLetter && cfg.deadLetterTopic == "" {
		_ = recv.Close(ctx)
		return nil, errorf("%w: subscription %q: the provider has no native dead-letter queue here; set WithDeadLetterTopic so failed events are kept",
			ErrInvalidOption, name)
	}
	if cfg.ackDeadline == 0 {
		cfg.ackDeadline = caps.DefaultAckDeadline
	}
	if cfg.clock == nil {
		if pc, ok := b.p.(providerClock); ok {
			cfg.clock = pc.Clock() // nil keeps the system clock
		}
	}
	s := newSubscription(b, topic, name, cfg, caps)
	s.recv = recv
	s.native = native
	// An exact native filter has already excluded every event the route's
	// pattern would skip: matching again would only cost time.
	s.filteredNatively = native.Exact && native.Expression != "" && spec.FilterPattern != ""
	if cfg.batchHandler == nil {
		s.handler = s.buildHandler(h)
	}
	s.recvCtx, s.stopRecv = context.WithCancel(context.WithoutCancel(ctx))
	s.handlerCtx, s.abort = context.WithCancel(context.WithoutCancel(ctx))
	s.settleCtx = context.WithoutCancel(ctx)
	s.stoppingCh = s.recvCtx.Done()

	b.mu.Lock()
	if b.isClosed() {
		b.mu.Unlock()
		_ = recv.Close(ctx)
		return nil, errorf("%w: subscribe %q", ErrClosed, name)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	switch {
	case cfg.batchHandler != nil:
		s.startBatch()
	case cfg.ordered:
		s.startOrdered()
	default:
		s.pool = newPool(s)
		s.pool.start()
	}
	go func() {
		s.wg.Wait()
		close(s.workersDone)
	}()
	go s.housekeeping()
	return s, nil
}

func newSubscription(b *Bus, topic, name string, cfg routeConfig, caps driver.Capabilities) *Subscription {
	s := &Subscription{bus: b, topic: topic, name: name, cfg: cfg, caps: caps, log: b.log,
		done: make(chan struct{}), workersDone: make(chan struct{}), houseDone: make(chan struct{}),
		abandonReq: make(chan struct{}), stopped: make(chan struct{})}
	s.tel = b.tel.forSubscription(topic, name)
	if s.stats = cfg.stats; s.stats == nil {
		s.stats = &routeStats{}
	}
	s.initControls()
	return s
}

// buildHandler fixes the order of the pipeline: recover outermost, then
// idempotency, then the route's middleware, then the handler. Retry and
// dead-lettering wrap all of it (see process), so no registration order can
// stop them from working.
func (s *Subscription) buildHandler(h Handler) Handler {
	h = Chain(h, s.cfg.middleware...)
	if s.cfg.timeout > 0 {
		h = timeout(s.cfg.timeout)(h)
	}
	if o, ok := s.bus.p.(handlerObserver); ok {
		h = o.ObserveHandler(s.topic, s.name, h)
	}
	if s.cfg.idem != nil {
		h = idempotent(s.cfg.idem, s.name, s.log)(h)
	}
	return h
}

// providerClock is implemented by providers that keep a time of their own
// (a memory provider given a fake clock): routes that set no clock
// (WithClock) take it, so the route's waits and the provider's leases and
// delays follow one time. A nil Clock means the system clock.
type providerClock interface {
	Clock() Clock
}

// handlerObserver is implemented by providers that watch handling (the
// recording provider of package crossbustest): every route's handler, with
// its middleware and timeout, is wrapped by ObserveHandler, inside the
// filter and idempotency, so the observer sees each run of the handler and
// what it returned — events a filter skipped or that idempotency found done
// are not runs.
type handlerObserver interface {
	ObserveHandler(topic, subscription string, h Handler) Handler
}

// NativeFilter reports the filter the provider applies to the subscription
// before delivering (a Pub/Sub subscription filter, a Service Bus rule, an
// EventBridge rule) and whether it is exactly the route's filter, in which
// case the route does not match deliveries again. ok is false when the
// provider does not filter this subscription natively.
func (s *Subscription) NativeFilter() (f driver.NativeFilter, ok bool) {
	return s.native, s.native.Expression != ""
}

// Topic and Name identify the subscription.
func (s *Subscription) Topic() string { return s.topic }

// Name is the subscription's name.
func (s *Subscription) Name() string { return s.name }

// Done is closed once the subscription has stopped: after Close, or after
// the provider reported an error that stopped it (see Err).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err reports why the subscription stopped on its own: an error from the
// provider that retrying cannot fix, such as a deleted subscription
// (ErrSubscriptionNotFound) or refused credentials (ErrUnauthorized). It is
// nil while the subscription runs and after Close.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops receiving, returns the events received but not started to the
// provider, and waits for running handlers until the drain timeout
// (WithDrainTimeout) or ctx's deadline, whichever comes first. Handlers still
// running then are abandoned: their contexts are cancelled, their deliveries
// are left unsettled for the provider to redeliver, and whatever they return
// later is ignored; the error wraps ErrHandlersAbandoned (an
// *AbandonedError says how many). Close is idempotent; it returns by the
// deadline even if a handler ignores its context.
func (s *Subscription) Close(ctx context.Context) error {
	s.beginShutdown()
	drain := time.NewTimer(time.Until(s.closeStart.Add(s.cfg.drainTimeout)))
	defer drain.Stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.abandon(ctx.Err())
	case <-drain.C:
		s.abandon(s.drainTimeoutError())
	}
	// After an abandon the receiver may still be closing in the
	// background; the deadline has passed, so Close does not wait for it.
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// beginShutdown starts the shutdown once: receiving stops at once, unstarted
// events go back to the provider, and running handlers drain.
func (s *Subscription) beginShutdown() {
	s.shutdownOnce.Do(func() {
		s.closeStart = time.Now()
		s.stopRecv()
		close(s.stopped)
		go s.shutdown()
	})
}

// shutdown waits for the drain, then releases the receiver.
func (s *Subscription) shutdown() {
	if s.pool != nil {
		s.pool.stop()
	}
	t := time.NewTimer(s.cfg.drainTimeout)
	defer t.Stop()
	select {
	case <-s.workersDone:
	case <-t.C:
		s.abandon(s.drainTimeoutError())
	case <-s.abandonReq:
	}
	s.abort()
	<-s.houseDone
	// Closing the receiver must not hang the shutdown on a stuck provider.
	ctx, cancel := context.WithTimeout(s.settleCtx, receiverCloseTimeout)
	err := s.recv.Close(ctx)
	cancel()
	s.mu.Lock()
	if err != nil && s.closeErr == nil && !errors.Is(err, ErrClosed) {
		s.closeErr = errorf("subscription %q: close receiver: %w", s.name, err)
	}
	s.mu.Unlock()
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
	close(s.done)
}

func (s *Subscription) drainTimeoutError() error {
	return fmt.Errorf("drain timeout %v: %w", s.cfg.drainTimeout, context.DeadlineExceeded)
}

// receiverCloseTimeout bounds closing a provider's receiver at shutdown.
const receiverCloseTimeout = 5 * time.Second

// abandon ends the drain now: handlers still running are abandoned.
func (s *Subscription) abandon(cause error) {
	s.abandonOnce.Do(func() {
		select {
		case <-s.workersDone:
			close(s.abandonReq) // drained just in time: nothing abandoned
			return
		default:
		}
		s.abandoned.Store(true)
		n := s.running.Load()
		s.mu.Lock()
		s.closeErr = &AbandonedError{Topic: s.topic, Subscription: s.name, Handlers: int(n),
			Waited: time.Since(s.closeStart), Cause: cause}
		s.mu.Unlock()
		s.log.Error("crossbus: shutdown deadline passed; running handlers abandoned, their events left for redelivery",
			"subscription", s.name, "topic", s.topic, "handlers", n, "cause", cause)
		s.abort()
		close(s.abandonReq)
	})
}

// fail stops the subscription because of an error retrying cannot fix; Err
// reports it. The drain runs as for Close, bounded by the drain timeout.
func (s *Subscription) fail(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = errorf("subscription %q of topic %q stopped: %w", s.name, s.topic, err)
	}
	s.mu.Unlock()
	if !first {
		return
	}
	s.tel.receiveFailed(s.settleCtx, true)
	s.log.Error("crossbus: subscription stopped: the provider reported an error that retrying cannot fix",
		"subscription", s.name, "topic", s.topic, "error", err)
	s.beginShutdown()
}

func (s *Subscription) stopping() bool { return s.recvCtx.Err() != nil }

// fatalReceiveError reports whether a Receive error stops the subscription
// (see Receiver.Receive).
func fatalReceiveError(err error) bool {
	return errors.Is(err, ErrSubscriptionNotFound) || errors.Is(err, ErrTopicNotFound) ||
		errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrInvalidOption) ||
		errors.Is(err, ErrNotSupported) || errors.Is(err, ErrClosed) || IsPermanent(err)
}

// receiveBackoff spaces retries of a failing Receive: from 100ms doubling
// to 30s, with jitter. It is the subscription's own policy, not the
// handlers' retry policy.
var receiveBackoff = RetryPolicy{MaxAttempts: 1, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

// receiveCtx fills buf, retrying transient receive errors with backoff. It
// returns 0 once ctx (recvCtx or derived from it) ends or the subscription
// stops; an error that retrying cannot fix stops the subscription.
func (s *Subscription) receiveCtx(ctx context.Context, buf []driver.Delivery) int {
	failures := 0
	for {
		n, err := s.recv.Receive(ctx, buf)
		if err == nil {
			return n
		}
		if ctx.Err() != nil || s.stopping() {
			return 0
		}
		if fatalReceiveError(err) {
			s.fail(err)
			return 0
		}
		failures++
		d := receiveBackoff.Backoff(min(failures, 20))
		s.tel.receiveFailed(ctx, false)
		s.log.Error("crossbus: receive failed; retrying", "subscription", s.name, "topic", s.topic,
			"error", err, "failures", failures, "retryIn", d)
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

// returnAll gives deliveries that were never started back to the provider.
func (s *Subscription) returnAll(ds []driver.Delivery) {
	for _, d := range ds {
		s.nack(d, 0)
	}
}

// process runs one delivery to its settlement, in one consumer span. Handlers
// get a context derived from hctx.
func (s *Subscription) process(hctx context.Context, d driver.Delivery) {
	s.running.Add(1)
	defer s.running.Add(-1)
	e := d.Event()
	attempt := max(d.Attempt(), 1)
	if s.undecodable(hctx, d) {
		return
	}
	if s.references(e) {
		s.processReferenced(hctx, d, e, attempt)
		return
	}
	if !s.accepts(e) {
		s.ack(d)
		return
	}
	metrics := s.tel.t.metricsOn()
	ctx, span := s.tel.start(hctx, e, attempt, metrics)
	err := s.attempts(ctx, span, d, e, attempt, metrics)
	endSpan(span, err)
}

// undecodable dead-letters a delivery that carries no CloudEvent (see
// Undecodable) and reports whether it did; every kind of route and endpoint
// checks this before its filter.
func (s *Subscription) undecodable(ctx context.Context, d driver.Delivery) bool {
	u, ok := d.(driver.Undecodable)
	if !ok {
		return false
	}
	cause := u.DecodeError()
	if cause == nil {
		return false
	}
	attempt := max(d.Attempt(), 1)
	s.log.Error("crossbus: undecodable message; dead-lettering it", s.attrs(d, attempt, "error", cause)...)
	reason := &undecodableError{msg: "undecodable message: " + withoutLibPrefix(cause.Error()), err: cause}
	s.deadLetter(ctx, noopSpan, d, reason, attempt)
	return true
}

// undecodableError is the dead-letter cause of an undecodable message.
type undecodableError struct {
	msg string
	err error
}

func (e *undecodableError) Error() string { return e.msg }
func (e *undecodableError) Unwrap() error { return e.err }

// attempts runs the handler until the delivery is settled; it returns the
// last handler error (nil once handled).
func (s *Subscription) attempts(ctx context.Context, span trace.Span, d driver.Delivery, e *Event, attempt int, metrics bool) error {
	tel := s.tel
	for {
		permit, admitted := s.admit(d)
		if !admitted {
			return errBreakerOpen
		}
		var start time.Time
		if metrics {
			start = time.Now()
			tel.t.inFlight.Add(ctx, 1, tel.addBase...)
		}
		err := s.invoke(ctx, e, attempt)
		if metrics {
			tel.t.inFlight.Add(ctx, -1, tel.addBase...)
		}
		s.recordOutcome(ctx, permit, err)
		s.stats.outcome(err)
		if err == nil {
			if metrics {
				tel.handledOK(ctx, time.Since(start))
			}
			s.ack(d)
			return nil
		}
		if metrics {
			tel.handledErr(ctx, time.Since(start))
		}
		delay, next, inPlace := s.afterFailure(ctx, span, d, attempt, err, s.cfg.ordered)
		if !inPlace {
			return err
		}
		// Retry in place: ordered routes (so no later event of the key
		// overtakes this one) and providers that cannot delay redelivery.
		if !s.sleep(delay) {
			s.nack(d, 0)
			return err
		}
		attempt = next
	}
}

// afterFailure applies the retry policy to a failed attempt, for per-event
// and batch routes alike: it dead-letters the delivery (a permanent error, or
// the last attempt), or nacks it for a delayed redelivery by the provider, or
// — when the retry must run in place (ordered routes, providers that cannot
// delay a redelivery enough) — returns the delay and the number of the next
// attempt with inPlace true, leaving the delivery unsettled. A failure caused
// by shutdown leaves the event to the provider.
func (s *Subscription) afterFailure(ctx context.Context, span trace.Span, d driver.Delivery, attempt int, err error, ordered bool) (delay time.Duration, next int, inPlace bool) {
	if ctx.Err() != nil {
		s.nack(d, 0) // shut down mid-handler: leave it to the provider
		return 0, 0, false
	}
	inProgress := errors.Is(err, ErrInProgress)
	if !inProgress && (IsPermanent(err) || s.cfg.retry.Exhausted(attempt)) {
		s.deadLetter(ctx, span, d, err, attempt)
		return 0, 0, false
	}
	delay = s.cfg.retry.Backoff(attempt)
	s.tel.retry(ctx, span, attempt, delay, err)
	s.stats.retried.Add(1)
	s.log.Info("crossbus: handler failed; will retry", s.attrs(d, attempt, "error", err, "retryIn", delay)...)
	if s.push || !ordered && s.caps.DelayedRedelivery && (s.caps.MaxRedeliveryDelay == 0 || delay <= s.caps.MaxRedeliveryDelay) {
		s.nack(d, delay)
		return 0, 0, false
	}
	next = attempt
	if !inProgress { // a duplicate in progress elsewhere spends no attempt
		next++
	}
	return delay, next, true
}

// invoke runs the handler once, turning a panic into an error.
func (s *Subscription) invoke(hctx context.Context, e *Event, attempt int) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	ctx := &deliveryContext{Context: hctx, info: DeliveryInfo{
		Topic: s.topic, Subscription: s.name, Attempt: attempt, MaxAttempts: s.cfg.retry.MaxAttempts, Stopping: s.stoppingCh, Clock: s.clock}}
	return s.handler.Handle(ctx, e)
}

// The settle helpers do nothing once the shutdown abandoned the running
// handlers: their deliveries stay with the provider, whatever they returned.

func (s *Subscription) ack(d driver.Delivery) {
	if s.abandoned.Load() {
		return
	}
	if err := d.Ack(s.settleCtx); err != nil {
		s.log.Warn("crossbus: ack failed; the provider may redeliver", s.attrs(d, d.Attempt(), "error", err)...)
	}
}

func (s *Subscription) nack(d driver.Delivery, delay time.Duration) {
	if s.abandoned.Load() {
		return
	}
	if err := d.Nack(s.settleCtx, delay); err != nil {
		s.log.Warn("crossbus: nack failed; the provider redelivers after the lease", s.attrs(d, d.Attempt(), "error", err)...)
	}
}

func (s *Subscription) attrs(d driver.Delivery, attempt int, kv ...any) []any {
	e := d.Event()
	return append([]any{"subscription", s.name, "topic", s.topic, "eventID", e.ID(), "eventType", e.Type(), "source", sourceOf(e), "attempt", attempt}, kv...)
}
