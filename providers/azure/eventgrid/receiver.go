package eventgrid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

// MaxReceiveEvents is the most events one receive request returns.
const MaxReceiveEvents = 100

// receiver pulls from one queue event subscription. Its receive requests
// run on the namespace provider's lifetime, not on a Receive's context (see
// Receive).
type receiver struct {
	ns         *Namespace
	c          *aznamespaces.ReceiverClient
	topic, sub string
	maxWait    int32 // seconds
	lock       time.Duration
	settle     *settler
	polls      *providerkit.Polls[*delivery]

	mu          sync.Mutex
	outstanding map[*delivery]struct{} // returned, not yet settled
}

func newReceiver(ns *Namespace, c *aznamespaces.ReceiverClient, spec driver.SubscriptionSpec) *receiver {
	r := &receiver{ns: ns, c: c, topic: spec.Topic, sub: spec.Name, maxWait: int32(ns.opts.MaxWaitTime / time.Second),
		lock: ns.opts.LockDuration, outstanding: map[*delivery]struct{}{}}
	r.settle = &settler{r: r, lanes: map[settleOp]*lane{}}
	r.polls = providerkit.NewPolls(ns.life, &ns.polls, r.giveBack)
	return r
}

// pollSlack is how much longer than its MaxWaitTime a receive request may
// take before it is given up.
const pollSlack = 30 * time.Second

// Receive long-polls Event Grid until at least one event is available. Each
// returned delivery holds a lock for the subscription's lock duration. An
// event that does not decode is returned as an undecodable delivery
// (driver.Undecodable), which the portable layer dead-letters. A receive
// answered 404 (the event subscription or its topic was deleted) fails with
// driver.ErrSubscriptionNotFound, and 401 or 403 with
// driver.ErrUnauthorized: the portable layer stops the subscription.
//
// When ctx ends or the receiver closes while a receive request is in
// flight, Receive returns at once but the request is not cancelled: Event
// Grid may already have locked events for it, and a cancelled request would
// leave them locked to nobody until the lock expires (and count a
// delivery). The request runs to its end (at most MaxWaitTime); what it
// gets goes to the next Receive, or, once the receiver is closed, is
// released at once. The next Receive waits for that request instead of
// making another.
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, fmt.Errorf("%w: eventgrid: Receive needs a buffer of at least one delivery", driver.ErrInvalidOption)
	}
	ds, err := r.polls.Receive(ctx, min(len(buf), MaxReceiveEvents), r.pollDeliveries)
	switch {
	case errors.Is(err, providerkit.ErrPollsClosed):
		return 0, fmt.Errorf("eventgrid: receive from %s/%s: %w", r.topic, r.sub, driver.ErrClosed)
	case err != nil:
		return 0, err
	}
	for i, d := range ds {
		buf[i] = d
	}
	return len(ds), nil
}

// pollDeliveries makes one receive request and locks in its deliveries.
func (r *receiver) pollDeliveries(ctx context.Context, maxEvents int) ([]*delivery, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.maxWait)*time.Second+pollSlack)
	defer cancel()
	got, err := r.poll(ctx, int32(maxEvents))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ds := make([]*delivery, len(got))
	r.mu.Lock()
	for i, g := range got {
		d := &delivery{r: r, ev: g.ev, token: g.token, attempt: g.count, renewed: now}
		if g.err != nil {
			// Not a CloudEvent crossbus can hand to a handler: the
			// portable layer dead-letters it.
			d.ev, d.decodeErr = UndecodableEvent(g.raw, "/topics/"+r.topic+"/eventsubscriptions/"+r.sub), g.err
		}
		r.outstanding[d] = struct{}{}
		ds[i] = d
	}
	r.mu.Unlock()
	return ds, nil
}

// poll makes one receive request.
func (r *receiver) poll(ctx context.Context, maxEvents int32) ([]received, error) {
	var raw *http.Response
	_, err := r.c.ReceiveEvents(policy.WithCaptureResponse(ctx, &raw),
		&aznamespaces.ReceiveEventsOptions{MaxEvents: &maxEvents, MaxWaitTime: &r.maxWait})
	if raw != nil && raw.StatusCode == http.StatusOK {
		// Decode the body ourselves, also when the SDK could not: the JSON
		// event format tells data from data_base64, which the SDK's
		// CloudEvent type does not keep apart.
		body, perr := runtime.Payload(raw)
		if perr == nil {
			res, derr := decodeReceiveResult(body)
			if derr == nil {
				return res, nil
			}
			if ctx.Err() == nil {
				return nil, derr
			}
			// A body cut short by the provider's Close is not a bad result.
			err = derr
		} else {
			err = perr
		}
	}
	switch {
	case err == nil:
		return nil, nil
	case r.ns.life.Err() != nil:
		return nil, fmt.Errorf("eventgrid: receive from %s/%s: %w", r.topic, r.sub, driver.ErrClosed)
	}
	return nil, mapError(fmt.Sprintf("receive from event subscription %q of topic %q", r.sub, r.topic), err, driver.ErrSubscriptionNotFound)
}

// giveBack releases events that no Receive handed out.
func (r *receiver) giveBack(ds []*delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = d.Nack(ctx, 0) // on failure the lock expires: same outcome, later
		}()
	}
	wg.Wait()
}

// received is one entry of a receive result.
type received struct {
	token string
	count int
	ev    *driver.Event
	err   error           // the event did not decode
	raw   json.RawMessage // the event as it arrived, when it did not decode
}

// decodeReceiveResult decodes a receive response body:
// {"value":[{"brokerProperties":{"lockToken":"…","deliveryCount":1},"event":{…}}]}.
// An entry whose event does not decode keeps its lock token and the error;
// an entry without a lock token is an error for the whole result, since
// nothing could settle it.
func decodeReceiveResult(body []byte) ([]received, error) {
	var res struct {
		Value []struct {
			BrokerProperties struct {
				LockToken     string `json:"lockToken"`
				DeliveryCount int    `json:"deliveryCount"`
			} `json:"brokerProperties"`
			Event json.RawMessage `json:"event"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("eventgrid: decode receive result: %w", err)
	}
	out := make([]received, 0, len(res.Value))
	for i, v := range res.Value {
		bp := v.BrokerProperties
		if bp.LockToken == "" {
			return nil, fmt.Errorf("eventgrid: decode receive result: value[%d] has no brokerProperties.lockToken", i)
		}
		g := received{token: bp.LockToken, count: max(bp.DeliveryCount, 1)}
		if g.ev, g.err = DecodeCloudEvent(v.Event); g.err != nil {
			g.raw = v.Event
		}
		out = append(out, g)
	}
	return out, nil
}

// Close stops the receiver: Receive returns ErrClosed, and events that
// receive requests got after their Receive had returned are released. A
// receive request still running releases what it gets when it ends.
// Deliveries already returned can still be settled.
func (r *receiver) Close(ctx context.Context) error {
	r.giveBack(r.polls.Close())
	r.ns.receivers.Remove(r)
	return nil
}

// delivery is one locked event.
type delivery struct {
	r  *receiver
	ev *driver.Event
	// decodeErr says why the event Event Grid delivered does not decode;
	// ev is then its placeholder (UndecodableEvent).
	decodeErr error
	token     string
	attempt   int

	mu      sync.Mutex
	settled string // the operation that settled it

	renewed time.Time // when the lock was last taken or renewed; guarded by r.mu
}

func (d *delivery) Event() *driver.Event { return d.ev }

// DecodeError implements driver.Undecodable: nil unless the event does
// not decode.
func (d *delivery) DecodeError() error { return d.decodeErr }

// Attempt is Event Grid's delivery count: 1 on the first receive.
func (d *delivery) Attempt() int { return d.attempt }

// Ack acknowledges the event: Event Grid deletes it.
func (d *delivery) Ack(ctx context.Context) error {
	return d.finish(ctx, settleOp{kind: opAck})
}

// Nack releases the event for redelivery after delay, rounded up to the next
// delay Event Grid allows (0s, 10s, 1m, 10m, 1h; longer delays get 1h).
func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	return d.finish(ctx, settleOp{kind: opRelease, delay: ReleaseDelay(delay)})
}

// DeadLetter rejects the event, so Event Grid moves it to the event
// subscription's dead-letter destination. The reason cannot travel with it:
// Event Grid records its own ("Rejected"). Without
// NamespaceOptions.NativeDeadLetter it returns ErrNotSupported and the
// portable layer uses the route's dead-letter topic.
func (d *delivery) DeadLetter(ctx context.Context, info driver.DeadLetterInfo) error {
	if !d.r.ns.opts.NativeDeadLetter {
		return driver.ErrNotSupported
	}
	return d.finish(ctx, settleOp{kind: opReject})
}

// ExtendLease renews the lock. Event Grid extends it by the subscription's
// lock duration whatever d is, and only within an hour of the receive.
//
// The portable layer extends every held delivery in turn; one request per
// delivery would not keep up with a large prefetch. So the first call of a
// sweep renews, in batched requests, every lock of the receiver that is
// older than a sixth of the lock duration, and the calls that follow find
// their lock fresh and return at once.
func (d *delivery) ExtendLease(ctx context.Context, _ time.Duration) error {
	d.mu.Lock()
	settled := d.settled
	d.mu.Unlock()
	if settled != "" {
		return fmt.Errorf("eventgrid: renew lock of event %q: already %s", d.ev.ID(), settled)
	}
	return d.r.renew(ctx, d)
}

func (r *receiver) renew(ctx context.Context, d *delivery) error {
	now := time.Now()
	stale := r.lock / 6
	r.mu.Lock()
	if _, ok := r.outstanding[d]; !ok {
		r.mu.Unlock()
		return fmt.Errorf("eventgrid: renew lock of event %q: settled meanwhile", d.ev.ID())
	}
	if now.Sub(d.renewed) < stale {
		r.mu.Unlock()
		return nil
	}
	due := []*delivery{d}
	for o := range r.outstanding {
		if o != d && now.Sub(o.renewed) >= stale {
			due = append(due, o)
		}
	}
	r.mu.Unlock()
	tokens := make([]string, len(due))
	for i, o := range due {
		tokens[i] = o.token
	}
	errs := r.settle.each(ctx, settleOp{kind: opRenew}, tokens...)
	r.mu.Lock()
	for i, o := range due {
		switch {
		case errs[i] == nil:
			o.renewed = now
		case errors.Is(errs[i], ErrLockLost):
			delete(r.outstanding, o)
		}
	}
	r.mu.Unlock()
	if errs[0] != nil {
		return fmt.Errorf("eventgrid: renew lock of event %q: %w", d.ev.ID(), errs[0])
	}
	return nil
}

func (d *delivery) finish(ctx context.Context, op settleOp) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled != "" {
		return fmt.Errorf("eventgrid: %s event %q: already %s", op.kind, d.ev.ID(), d.settled)
	}
	err := d.r.settle.do(ctx, op, d.token)
	switch {
	case err == nil:
		d.settled = op.kind.past()
	case errors.Is(err, ErrLockLost):
		d.settled = "lost"
	default:
		return fmt.Errorf("eventgrid: %s event %q: %w", op.kind, d.ev.ID(), err)
	}
	d.r.mu.Lock()
	delete(d.r.outstanding, d)
	d.r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("eventgrid: %s event %q: %w", op.kind, d.ev.ID(), err)
	}
	return nil
}

// ReleaseDelay maps a redelivery delay to the release delay Event Grid
// allows that is not shorter: 0s, 10s, 1m, 10m or 1h (the maximum, used for
// anything longer).
func ReleaseDelay(d time.Duration) aznamespaces.ReleaseDelay {
	switch {
	case d <= 0:
		return aznamespaces.ReleaseDelayNoDelay
	case d <= 10*time.Second:
		return aznamespaces.ReleaseDelayTenSeconds
	case d <= time.Minute:
		return aznamespaces.ReleaseDelayOneMinute
	case d <= 10*time.Minute:
		return aznamespaces.ReleaseDelayTenMinutes
	}
	return aznamespaces.ReleaseDelayOneHour
}
