package eventgrid

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Event Grid limits for one publish request. A megabyte here is 1 MiB.
const (
	// MaxEventBytes is the largest event Event Grid accepts, counted on its
	// JSON form (basic and namespace topics).
	MaxEventBytes = 1 << 20
	// MaxRequestBytes bounds the JSON body of one publish request.
	MaxRequestBytes = 1 << 20
	// MaxNamespaceBatch is the most events one namespace topic publish takes.
	MaxNamespaceBatch = 1000
	// MaxTopicBatch is the most events one basic topic publish takes.
	MaxTopicBatch = 5000
)

// sendFunc sends one non-empty batch in one request.
type sendFunc func(ctx context.Context, batch []messaging.CloudEvent) error

// publisher batches events within Event Grid's limits and isolates failures.
//
// Event Grid accepts or refuses a publish request as a whole. To report
// failures per event, as the crossbus contract asks, a batch refused with 400
// Bad Request (an event Event Grid will not take) or 413 (larger than Event
// Grid counts it) is split in halves and each half sent again, down to single
// events: the events that go through are published once, the ones Event Grid
// refuses on their own are reported with its error. Nothing is sent twice,
// because a refused request published nothing. Any other failure (not found,
// unauthorized, throttled after the SDK's retries, network) fails the whole
// batch with that error.
type publisher struct {
	maxCount int
	what     string // "namespace topic" or "topic", for messages
}

func (p publisher) publish(ctx context.Context, topic string, events []*driver.Event, send sendFunc) error {
	errs := make([]error, len(events))
	conv := make([]messaging.CloudEvent, 0, len(events))
	idx := make([]int, 0, len(events))
	sizes := make([]int, 0, len(events))
	for i, e := range events {
		ce, size, err := toAzure(e)
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("eventgrid: %w: %w", driver.ErrInvalidEvent, err)
		case size > MaxEventBytes:
			errs[i] = &crossbus.SizeError{EventID: e.ID(), Size: size, Limit: MaxEventBytes}
		default:
			conv = append(conv, ce)
			idx = append(idx, i)
			sizes = append(sizes, size)
		}
	}
	for start := 0; start < len(conv); {
		end, body := start, 2 // the array's brackets
		for end < len(conv) && end-start < p.maxCount {
			add := sizes[end]
			if end > start {
				add++ // comma
			}
			if end > start && body+add > MaxRequestBytes {
				break
			}
			body += add
			end++
		}
		p.sendIsolating(ctx, topic, conv[start:end], idx[start:end], errs, send)
		start = end
	}
	return collect(events, errs)
}

func (p publisher) sendIsolating(ctx context.Context, topic string, batch []messaging.CloudEvent, idx []int, errs []error, send sendFunc) {
	err := send(ctx, batch)
	if err == nil {
		return
	}
	if st := statusOf(err); (st == http.StatusBadRequest || st == http.StatusRequestEntityTooLarge) && len(batch) > 1 && ctx.Err() == nil {
		mid := len(batch) / 2
		p.sendIsolating(ctx, topic, batch[:mid], idx[:mid], errs, send)
		p.sendIsolating(ctx, topic, batch[mid:], idx[mid:], errs, send)
		return
	}
	wrapped := mapError(fmt.Sprintf("publish to %s %q", p.what, topic), err, driver.ErrTopicNotFound)
	for _, i := range idx {
		errs[i] = wrapped
	}
}

// collect turns per-event errors into the Provider.Publish result: nil, the
// one error every event failed with, or a *crossbus.PublishError.
func collect(events []*driver.Event, errs []error) error {
	var failed []crossbus.EventError
	same := true
	for i, err := range errs {
		if err == nil {
			same = false
			continue
		}
		if len(failed) > 0 && failed[0].Err != err {
			same = false
		}
		failed = append(failed, crossbus.EventError{Index: i, EventID: events[i].ID(), Err: err})
	}
	switch {
	case len(failed) == 0:
		return nil
	case same && len(failed) == len(events):
		return failed[0].Err
	}
	return &crossbus.PublishError{Failed: failed}
}
