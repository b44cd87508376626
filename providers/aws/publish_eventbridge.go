package aws

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// maxSource is the longest EventBridge Source.
const maxSource = 256

// retryableEntryCodes are the PutEvents entry errors EventBridge documents as
// retryable.
var retryableEntryCodes = map[string]bool{"ThrottlingException": true, "InternalFailure": true, "InternalException": true}

// eventBridgeEntry maps an event onto a PutEvents entry: source -> Source,
// type -> DetailType, the whole event in structured JSON -> Detail, time ->
// Time, subject -> Resources when the subject is an ARN. It also returns the
// entry's size as EventBridge counts it.
func eventBridgeEntry(e *driver.Event, bus string) (ebtypes.PutEventsRequestEntry, int, error) {
	var fields []crossbus.FieldError
	if n := utf8.RuneCountInString(e.Type()); n > MaxDetailType {
		fields = append(fields, crossbus.FieldError{Field: "type",
			Problem: fmt.Sprintf("is %d characters; EventBridge DetailType allows at most %d", n, MaxDetailType)})
	}
	if n := utf8.RuneCountInString(e.Source()); n > maxSource {
		fields = append(fields, crossbus.FieldError{Field: "source",
			Problem: fmt.Sprintf("is %d characters; EventBridge Source allows at most %d", n, maxSource)})
	}
	if fields != nil {
		return ebtypes.PutEventsRequestEntry{}, 0, &crossbus.ValidationError{EventID: e.ID(), Fields: fields}
	}
	detail, err := marshalEvent(e)
	if err != nil {
		return ebtypes.PutEventsRequestEntry{}, 0, err
	}
	entry := ebtypes.PutEventsRequestEntry{Source: awssdk.String(e.Source()), DetailType: awssdk.String(e.Type()),
		Detail: awssdk.String(string(detail)), EventBusName: awssdk.String(bus)}
	size := len(e.Source()) + len(e.Type()) + len(detail)
	if t := e.Time(); !t.IsZero() {
		entry.Time = awssdk.Time(t)
		size += 14
	}
	if s := e.Subject(); strings.HasPrefix(s, "arn:") {
		entry.Resources = []string{s}
		size += len(s)
	}
	return entry, size, nil
}

// publishEventBridge sends events to a bus with PutEvents, in calls within
// the entry-count and size limits, retrying entries refused with a
// retryable code.
func (p *Provider) publishEventBridge(ctx context.Context, bus string, events []*driver.Event) error {
	if err := p.checkBus(ctx, bus); err != nil {
		return err
	}
	limit := p.limit(MaxEventBridgeBytes)
	failed := map[int]error{}
	entries := make([]ebtypes.PutEventsRequestEntry, len(events))
	sizes := make([]int, len(events))
	ok := make([]int, 0, len(events))
	for i, e := range events {
		entry, size, err := eventBridgeEntry(e, bus)
		switch {
		case err != nil:
			failed[i] = err
		case size > limit:
			failed[i] = &crossbus.SizeError{EventID: e.ID(), Size: size, Limit: limit}
		default:
			entries[i], sizes[i] = entry, size
			ok = append(ok, i)
		}
	}
	for _, b := range chunks(ok, func(i int) int { return sizes[i] }, maxBatch, MaxEventBridgeBytes) {
		for i, err := range p.withEntryRetries(ctx, b, func(ctx context.Context, batch []int) (map[int]*EntryError, error) {
			in := &eventbridge.PutEventsInput{Entries: make([]ebtypes.PutEventsRequestEntry, len(batch))}
			for j, i := range batch {
				in.Entries[j] = entries[i]
			}
			out, err := p.eb.PutEvents(ctx, in)
			if err != nil {
				return nil, mapErr(fmt.Errorf("aws: PutEvents to bus %s: %w", bus, ctxErr(ctx, err)), driver.ErrTopicNotFound)
			}
			res := map[int]*EntryError{}
			if out.FailedEntryCount == 0 {
				return res, nil
			}
			for j, r := range out.Entries {
				if j < len(batch) && r.ErrorCode != nil {
					code := *r.ErrorCode
					res[batch[j]] = &EntryError{Op: "PutEvents", Code: code, Message: awssdk.ToString(r.ErrorMessage), Retryable: retryableEntryCodes[code]}
				}
			}
			return res, nil
		}) {
			failed[i] = err
		}
	}
	return publishError(events, failed)
}

// checkBus makes sure a bus exists before the first PutEvents to it:
// EventBridge accepts events for a missing bus and drops them.
func (p *Provider) checkBus(ctx context.Context, bus string) error {
	if p.opts.SkipBusCheck {
		return nil
	}
	if _, ok := p.buses.Load(bus); ok {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := p.eb.DescribeEventBus(cctx, &eventbridge.DescribeEventBusInput{Name: awssdk.String(bus)})
	switch {
	case err == nil, isAccessDenied(err):
		p.buses.Store(bus, true)
		return nil
	default:
		return mapErr(fmt.Errorf("aws: event bus %q: %w", bus, ctxErr(ctx, err)), driver.ErrTopicNotFound)
	}
}
