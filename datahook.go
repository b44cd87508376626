package crossbus

import (
	"context"
	"time"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/datahook"
)

// The data hook keeps large event data outside the event (package
// claimcheck installs it with its BusOption). On publish the hook may
// replace events by copies whose data it stored; on delivery the data of an
// event the hook references is fetched before the filter, so filters and
// handlers see the whole event. A failed fetch counts as a failed attempt:
// it is retried by the route's policy and dead-lettered after the last one.

func init() {
	datahook.Install = func(bus any, h datahook.Hook) error {
		b, ok := bus.(*Bus)
		if !ok || b == nil || h == nil {
			return errorf("%w: data hook needs a bus and a hook", ErrInvalidOption)
		}
		if b.data != nil {
			return errorf("%w: the bus already has a claim check", ErrInvalidOption)
		}
		b.data = h
		return nil
	}
}

// offload hands the valid events of a publish to the data hook. It returns
// the events to check and send (events itself when nothing changed) and an
// error per event that cannot be sent (nil when none).
func (b *Bus) offload(ctx context.Context, events []*Event) ([]*Event, []error) {
	if b.data == nil {
		return events, nil
	}
	valid := make([]*Event, 0, len(events))
	at := make([]int, 0, len(events))
	for i, e := range events {
		if e != nil && Validate(e) == nil {
			valid = append(valid, e)
			at = append(at, i)
		}
	}
	if len(valid) == 0 {
		return events, nil
	}
	out, errs := b.data.Outgoing(ctx, valid, b.caps.MaxEventBytes)
	if len(out) != len(valid) || errs != nil && len(errs) != len(valid) {
		return events, failEvery(len(events), errorf("claim check returned %d events and %d errors for %d", len(out), len(errs), len(valid)))
	}
	var all []error
	if errs != nil {
		all = make([]error, len(events))
		for j, err := range errs {
			all[at[j]] = err
		}
	}
	changed := false
	for j := range out {
		if out[j] != valid[j] {
			changed = true
			break
		}
	}
	if !changed {
		return events, all
	}
	send := append([]*Event(nil), events...)
	for j, e := range out {
		if e != nil {
			send[at[j]] = e
		}
	}
	return send, all
}

// errorAt is errs[i], or nil when errs is nil.
func errorAt(errs []error, i int) error {
	if errs == nil {
		return nil
	}
	return errs[i]
}

// references reports whether e's data must be fetched before handling.
func (s *Subscription) references(e *Event) bool {
	return s.bus.data != nil && e != nil && s.bus.data.References(e)
}

// processReferenced is process for an event whose data the hook holds: the
// consumer span starts first, the data is fetched (a failure is an attempt
// that failed, retried or dead-lettered by the route's policy), then the
// filter and the handler see the whole event.
func (s *Subscription) processReferenced(hctx context.Context, d driver.Delivery, e *Event, attempt int) {
	metrics := s.tel.t.metricsOn()
	ctx, span := s.tel.start(hctx, e, attempt, metrics)
	for {
		full, err := s.bus.data.Resolve(ctx, e)
		if err == nil {
			e = full
			break
		}
		s.log.Warn("crossbus: fetching the event's data failed", s.attrs(d, attempt, "error", err)...)
		delay, next, inPlace := s.afterFailure(ctx, span, d, attempt, err, s.cfg.ordered)
		if !inPlace {
			endSpan(span, err)
			return
		}
		if !s.sleep(delay) {
			s.nack(d, 0)
			endSpan(span, err)
			return
		}
		attempt = next
	}
	if s.cfg.filter != nil && !s.cfg.filter.Match(e) {
		s.ack(d)
		endSpan(span, nil)
		return
	}
	err := s.attempts(ctx, span, d, e, attempt, metrics)
	endSpan(span, err)
}

// batchItem prepares a received delivery for a batch route: an event whose
// data the hook holds is fetched and the delivery wrapped so the batch
// handler sees the whole event. A failed fetch settles the delivery as a
// failed attempt and reports false.
func (s *Subscription) batchItem(ctx context.Context, d driver.Delivery, attempt int) (driver.Delivery, bool) {
	e := d.Event()
	if !s.references(e) {
		return d, true
	}
	full, err := s.bus.data.Resolve(ctx, e)
	if err != nil {
		s.log.Warn("crossbus: fetching the event's data failed", s.attrs(d, attempt, "error", err)...)
		s.settleBatchItem(ctx, noopSpan, d, attempt, err)
		return nil, false
	}
	if _, ok := d.(driver.LeaseExtender); ok {
		return &resolvedExtender{resolved{Delivery: d, e: full}}, true
	}
	return &resolved{Delivery: d, e: full}, true
}

// filteredOut reports whether the route's filter skips d's event.
func (s *Subscription) filteredOut(d driver.Delivery) bool {
	return !s.accepts(d.Event())
}

// resolveHeld fetches the data of deliveries a batch holds unresolved (held
// for a retry after a failed fetch) and applies the filter to them; those
// that fail again or are filtered out are settled and left out.
func (s *Subscription) resolveHeld(ctx context.Context, b batch) batch {
	if s.bus.data == nil {
		return b
	}
	out := batch{ds: b.ds[:0:0], attempts: b.attempts[:0:0]}
	for i, d := range b.ds {
		if _, done := d.(interface{ resolvedEvent() }); done || !s.references(d.Event()) {
			out.add(d, b.attempts[i])
			continue
		}
		r, ok := s.batchItem(ctx, d, b.attempts[i])
		if !ok {
			continue
		}
		if s.filteredOut(r) {
			s.ack(r)
			continue
		}
		out.add(r, b.attempts[i])
	}
	return out
}

// resolved is a delivery whose event's data was fetched: Event returns the
// whole event; settling goes to the original delivery.
type resolved struct {
	driver.Delivery
	e *Event
}

func (r *resolved) Event() *Event  { return r.e }
func (r *resolved) resolvedEvent() {}

// resolvedExtender is a resolved delivery whose lease can be extended.
type resolvedExtender struct{ resolved }

func (r *resolvedExtender) ExtendLease(ctx context.Context, d time.Duration) error {
	return r.Delivery.(driver.LeaseExtender).ExtendLease(ctx, d)
}
