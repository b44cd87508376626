package crossbus

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/crossbus/crossbus/driver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Running a batch: the breaker's admission, idempotency claims per event,
// one handler call, and the settlement of each delivery by its own result.
// Pulled batches (batchrun.go) and pushed ones (Endpoint.DeliverBatch) share
// it.

// runBatch runs the batch handler once over b and settles every delivery.
func (s *Subscription) runBatch(hctx context.Context, b batch) {
	if b = s.resolveHeld(hctx, b); b.len() == 0 {
		return
	}
	permit, admitted := s.admit(b.ds...)
	if !admitted {
		return
	}
	n := b.len()
	events := make([]*Event, n)
	maxAttempt := 1
	for i, d := range b.ds {
		events[i] = d.Event()
		maxAttempt = max(maxAttempt, b.attempts[i])
	}
	ctx, span := s.tel.startBatch(hctx, events, maxAttempt)
	var results []error // nil: every event succeeded
	var run []int       // the events the handler ran (nil: all)
	if s.cfg.idem == nil {
		results = s.handleBatch(ctx, events, maxAttempt)
	} else {
		// Claim each event; run only the new ones.
		results = make([]error, n)
		var claims []*heldClaim
		run, claims = s.claimBatch(ctx, events, results)
		if len(run) > 0 {
			runEvents := make([]*Event, len(run))
			for j, i := range run {
				runEvents[j] = events[i]
			}
			if errs := s.handleBatch(ctx, runEvents, maxAttempt); errs != nil {
				for j, i := range run {
					results[i] = errs[j]
				}
			}
			s.settleClaims(ctx, events, run, claims, results)
		}
	}
	if s.breaker != nil {
		s.recordBatch(ctx, permit, n, run, results)
	}
	failed := 0
	for i, d := range b.ds {
		var err error
		if results != nil {
			err = results[i]
		}
		if err != nil {
			failed++
		}
		s.stats.outcome(err)
		s.settleBatchItem(ctx, span, d, b.attempts[i], err)
	}
	if failed > 0 {
		endSpan(span, errorf("%d of %d events in the batch failed", failed, n))
	} else {
		endSpan(span, nil)
	}
}

// handleBatch runs the batch handler over events, with telemetry.
func (s *Subscription) handleBatch(ctx context.Context, events []*Event, attempt int) []error {
	s.stats.batchInFlight.Add(int64(len(events)))
	defer s.stats.batchInFlight.Add(-int64(len(events)))
	if !s.tel.t.metricsOn() {
		return s.invokeBatch(ctx, events, attempt)
	}
	start := time.Now()
	s.tel.t.inFlight.Add(ctx, int64(len(events)), s.tel.addBase...)
	errs := s.invokeBatch(ctx, events, attempt)
	s.tel.t.inFlight.Add(ctx, -int64(len(events)), s.tel.addBase...)
	s.tel.batchHandled(ctx, errs, len(events), time.Since(start))
	return errs
}

// invokeBatch calls the batch handler once, turning a panic or a malformed
// result into a failure of every event. nil means every event succeeded.
func (s *Subscription) invokeBatch(hctx context.Context, events []*Event, attempt int) (errs []error) {
	defer func() {
		if v := recover(); v != nil {
			errs = failEvery(len(events), &panicError{value: v, stack: debug.Stack()})
		}
	}()
	ctx := &deliveryContext{Context: hctx, info: DeliveryInfo{
		Topic: s.topic, Subscription: s.name, Attempt: attempt, MaxAttempts: s.cfg.retry.MaxAttempts, Stopping: s.stoppingCh, Clock: s.clock}}
	errs = s.cfg.batchHandler.HandleBatch(ctx, events)
	if errs != nil && len(errs) != len(events) {
		err := errorf("batch handler returned %d results for %d events", len(errs), len(events))
		s.log.Error("crossbus: malformed batch result; every event of the batch fails", "subscription", s.name, "error", err)
		return failEvery(len(events), err)
	}
	return errs
}

// recordBatch reports the counted outcomes of the n events of a batch (of
// those in run, when not nil) to the breaker.
func (s *Subscription) recordBatch(ctx context.Context, p breakerPermit, n int, run []int, results []error) {
	if ctx.Err() != nil {
		s.breaker.record(p, 0, 0)
		return
	}
	ok, failed := 0, 0
	count := func(err error) {
		f, counted := s.breaker.classify(err)
		switch {
		case !counted:
		case f:
			failed++
		default:
			ok++
		}
	}
	switch {
	case run != nil:
		for _, i := range run {
			count(results[i])
		}
	case results == nil:
		ok = n
	default:
		for _, err := range results {
			count(err)
		}
	}
	s.breaker.record(p, ok, failed)
}

// settleBatchItem settles one delivery of a batch by its result. A retry
// that must run in place is held, lease extended, for a batch after the
// delay.
func (s *Subscription) settleBatchItem(ctx context.Context, span trace.Span, d driver.Delivery, attempt int, err error) {
	if err == nil {
		s.ack(d)
		return
	}
	delay, next, inPlace := s.afterFailure(ctx, span, d, attempt, err, false)
	if inPlace {
		s.batch.addRetry(heldRetry{d: d, attempt: next, due: s.clock.Now().Add(delay)})
	}
}

// claimBatch takes idempotency claims for a batch. It returns the indexes
// of the events to run and their claims; skipped duplicates get a nil result
// (acked), events in progress elsewhere or whose claim failed get an error
// (retried).
func (s *Subscription) claimBatch(ctx context.Context, events []*Event, results []error) ([]int, []*heldClaim) {
	run := make([]int, 0, len(events))
	claims := make([]*heldClaim, 0, len(events))
	c := s.cfg.idem
	for i, e := range events {
		h, ok, err := c.begin(ctx, c.key(ctx, s.name, e), e, s.log)
		if !ok {
			results[i] = err
			continue
		}
		run = append(run, i)
		claims = append(claims, h)
	}
	return run, claims
}

// settleClaims completes the claims of events that succeeded and releases
// those of events that failed, so their retries run.
func (s *Subscription) settleClaims(ctx context.Context, events []*Event, run []int, claims []*heldClaim, results []error) {
	for j, i := range run {
		results[i] = claims[j].finish(ctx, events[i], results[i])
	}
}

// startBatch begins the consumer span of a batch, linked to each event's
// producer span, and counts the deliveries.
func (st *subTelemetry) startBatch(ctx context.Context, events []*Event, attempt int) (context.Context, trace.Span) {
	t := st.t
	if t.metricsOn() {
		t.delivered.Add(ctx, int64(len(events)), st.addBase...)
		now := time.Now()
		for _, e := range events {
			if tm := e.Time(); !tm.IsZero() {
				t.latency.Record(ctx, now.Sub(tm).Seconds(), st.recBase...)
			}
		}
	}
	tracer, on := t.tracerOn()
	if !on {
		return ctx, noopSpan
	}
	links := make([]trace.Link, 0, min(len(events), maxBatchLinks))
	for _, e := range events[:min(len(events), maxBatchLinks)] {
		if _, ok := extension(e, ExtTraceParent); ok {
			if sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), eventCarrier{e})); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	opts := append([]trace.SpanStartOption{trace.WithLinks(links...)}, st.spanOpts...)
	ctx, span := tracer.Start(ctx, st.spanName, opts...)
	if span.IsRecording() {
		span.SetAttributes(st.destination...)
		span.SetAttributes(attribute.Int("messaging.batch.message_count", len(events)),
			attribute.Int("messaging.message.delivery_attempt", attempt))
	}
	return ctx, span
}

// maxBatchLinks bounds the span links of one batch span.
const maxBatchLinks = 128

// batchHandled counts a batch handler call's outcomes.
func (st *subTelemetry) batchHandled(ctx context.Context, errs []error, n int, d time.Duration) {
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if ok := n - failed; ok > 0 {
		st.t.handled.Add(ctx, int64(ok), st.addOK...)
	}
	if failed > 0 {
		st.t.handled.Add(ctx, int64(failed), st.addFailed...)
		st.t.duration.Record(ctx, d.Seconds(), st.recFailed...)
		return
	}
	st.t.duration.Record(ctx, d.Seconds(), st.recOK...)
}

// failEvery is a batch result that fails each of n events with err.
func failEvery(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
