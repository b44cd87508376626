package crossbus

import (
	"context"
	"sync"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// DeliverBatch runs the pipeline for a batch of pushed deliveries (a Lambda
// SQS batch, an Event Grid batch) and settles each one before returning; the
// adapter then reads each delivery's outcome (PushDelivery.Outcome) to build
// the platform's answer, for example a partial batch response listing the
// nacked items.
//
// On a batch endpoint (NewBatchEndpoint, or Router.Endpoint of a batch route)
// the deliveries the filter passes go to the batch handler, in batches of at
// most the route's WithBatch count; each event is settled by its own result.
// On an endpoint with a per-event handler each delivery goes through Deliver,
// in parallel up to the route's concurrency — or, with WithOrdering, one at a
// time in order, and once a delivery of a partition key is nacked the later
// ones of that key are nacked without running, so none overtakes it.
func (ep *Endpoint) DeliverBatch(ctx context.Context, ds []driver.Delivery) {
	s := ep.s
	if s.cfg.batchHandler == nil {
		ep.deliverEach(ctx, ds)
		return
	}
	var b batch
	for _, d := range ds {
		if s.undecodable(ctx, d) {
			continue
		}
		var ok bool
		if d, ok = s.batchItem(ctx, d, max(d.Attempt(), 1)); !ok {
			continue
		}
		if !s.accepts(d.Event()) {
			s.ack(d)
			continue
		}
		b.add(d, max(d.Attempt(), 1))
	}
	if !s.pushRateLimit(ctx, b.len()) {
		for _, d := range b.ds {
			s.nack(d, 0)
		}
		return
	}
	maxN := s.cfg.batch.maxCount
	for start := 0; start < b.len(); start += maxN {
		end := min(start+maxN, b.len())
		s.runBatch(ctx, batch{ds: b.ds[start:end], attempts: b.attempts[start:end]})
	}
}

func (ep *Endpoint) deliverEach(ctx context.Context, ds []driver.Delivery) {
	s := ep.s
	if s.cfg.ordered {
		blocked := map[string]bool{}
		for _, d := range ds {
			key := PartitionKey(d.Event())
			if key != "" && blocked[key] {
				s.nack(d, 0)
				continue
			}
			w := &watchedDelivery{Delivery: d}
			ep.Deliver(ctx, w)
			if w.nacked && key != "" {
				blocked[key] = true
			}
		}
		return
	}
	sem := make(chan struct{}, s.cfg.concurrency)
	var wg sync.WaitGroup
	for _, d := range ds {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ep.Deliver(ctx, d)
		}()
	}
	wg.Wait()
}

// watchedDelivery notes whether the pipeline nacked a delivery.
type watchedDelivery struct {
	driver.Delivery
	nacked bool
}

// DecodeError forwards the wrapped delivery's (see Undecodable).
func (w *watchedDelivery) DecodeError() error {
	if u, ok := w.Delivery.(driver.Undecodable); ok {
		return u.DecodeError()
	}
	return nil
}

func (w *watchedDelivery) Nack(ctx context.Context, delay time.Duration) error {
	w.nacked = true
	return w.Delivery.Nack(ctx, delay)
}
