package gcp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp/internal/attempts"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// maxPullResponseBytes lets a Pull response carry large messages (gRPC's
// default limit of 4 MiB is below Pub/Sub's 10 MB message size).
const maxPullResponseBytes = 32 << 20

// orderedPullWait bounds how long Receive on an ordered subscription waits
// for one of its deliveries to be settled before pulling again (see pace).
const orderedPullWait = 50 * time.Millisecond

// receiver pulls one subscription with unary Pull requests and settles with
// Acknowledge and ModifyAckDeadline, which map one to one onto the crossbus
// Delivery contract (see the package documentation for why it does not use
// the client's callback-based Subscriber.Receive).
type receiver struct {
	p             *Provider
	sub           string
	origin        pubsubwire.Origin
	ordered       bool
	dlTopic       string // the dead-letter policy's topic, "" without one
	leaseSecs     int32
	receiptModack bool
	caps          driver.Capabilities
	maxMsgs       int
	maxBytes      int
	attempts      *attempts.Counter // nil when Pub/Sub counts attempts
	settler       *settler
	native        driver.NativeFilter // the subscription's filter

	closeCtx context.Context // cancelled by Close: ends pulls in flight
	cancel   context.CancelFunc
	pulls    sync.WaitGroup // Receive calls in flight

	mu          sync.Mutex
	closed      bool
	outstanding int // deliveries handed out and not settled
	reserved    int // room held for pulls in flight
	outBytes    int
	batches     map[*batch]struct{} // pulls with unsettled deliveries
	settled     int                 // settlements since deliveries were last handed out
	room        chan struct{}       // closed on a settlement when someone waits
}

var (
	_ driver.Receiver             = (*receiver)(nil)
	_ driver.ReceiverCapabilities = (*receiver)(nil)
	_ driver.NativeFiltering      = (*receiver)(nil)
)

// NativeFilter reports the subscription's filter, exact when it is the
// translation of the route's pattern (SubscriptionFilter) and that
// translation is exact.
func (r *receiver) NativeFilter() driver.NativeFilter { return r.native }

// Capabilities reports the subscription's own capabilities: native dead
// letters when it has a dead-letter policy, its ordering, and the lease.
func (r *receiver) Capabilities() driver.Capabilities { return r.caps }

// Receive pulls up to len(buf) messages, as many as flow control allows,
// blocking until at least one arrives.
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0, r.errClosed()
	}
	r.pulls.Add(1)
	r.mu.Unlock()
	defer r.pulls.Done()

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.closeCtx, cancel)
	defer stop()
	for {
		n, err := r.reserve(pctx, len(buf))
		if err != nil {
			return 0, r.receiveErr(ctx, err)
		}
		if r.ordered {
			r.pace(pctx)
		}
		// Send the settlements queued so far first: the service then knows
		// what this consumer finished before it hands out more, and a
		// subscription does not keep acknowledged messages as backlog.
		r.settler.flush(pctx)
		resp, err := r.p.client.SubscriptionAdminClient.Pull(pctx, &pb.PullRequest{Subscription: r.sub, MaxMessages: int32(n)},
			gax.WithGRPCOptions(grpc.MaxCallRecvMsgSize(maxPullResponseBytes)))
		if err != nil {
			r.unreserve(n)
			if pctx.Err() == nil && (grpcCode(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)) {
				continue // the long poll ended empty
			}
			return 0, r.receiveErr(ctx, r.p.watch.explain(subscriptionError("pull", r.sub, err)))
		}
		if k := r.deliver(resp.GetReceivedMessages(), buf, n); k > 0 {
			return k, nil
		}
		if r.isClosed() {
			return 0, r.errClosed()
		}
	}
}

func (r *receiver) errClosed() error {
	return fmt.Errorf("gcp: receive from %q: %w", r.sub, driver.ErrClosed)
}

// receiveErr prefers the caller's and Close's reasons to the pull's error.
func (r *receiver) receiveErr(ctx context.Context, err error) error {
	if r.isClosed() {
		return r.errClosed()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (r *receiver) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// reserve blocks while the receiver holds its maximum of unsettled
// messages or bytes, then reserves room for the messages one pull may
// return and returns how many that is. Concurrent Receive calls therefore
// never pull more than MaxOutstandingMessages together; bytes are known
// only once pulled, so MaxOutstandingBytes may be exceeded by one pull.
func (r *receiver) reserve(ctx context.Context, want int) (int, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return 0, driver.ErrClosed
		}
		if free := r.maxMsgs - r.outstanding - r.reserved; free > 0 && r.outBytes < r.maxBytes {
			n := min(want, free, maxPullBatch)
			r.reserved += n
			r.mu.Unlock()
			return n, nil
		}
		ch := r.roomLocked()
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// unreserve gives back room reserved for a pull that returned fewer
// messages.
func (r *receiver) unreserve(n int) {
	r.mu.Lock()
	r.reserved -= n
	r.wakeLocked()
	r.mu.Unlock()
}

// wakeLocked wakes the Receive calls waiting for room.
func (r *receiver) wakeLocked() {
	if r.room != nil {
		close(r.room)
		r.room = nil
	}
}

// roomLocked returns a channel closed at the next settlement.
func (r *receiver) roomLocked() chan struct{} {
	if r.room == nil {
		r.room = make(chan struct{})
	}
	return r.room
}

// pace runs before each pull of an ordered subscription. Pub/Sub releases
// the next message of an ordering key once the previous one is
// acknowledged, so when every delivery this receiver holds is still being
// handled, a pull right away would come back empty after a long poll; it
// first waits (up to orderedPullWait) for one to be settled.
func (r *receiver) pace(ctx context.Context) {
	r.mu.Lock()
	if r.outstanding == 0 || r.settled > 0 {
		r.mu.Unlock()
		return
	}
	ch := r.roomLocked()
	r.mu.Unlock()
	t := time.NewTimer(orderedPullWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// deliver turns pulled messages into deliveries in buf and gives back the
// room reserved for the pull.
func (r *receiver) deliver(msgs []*pb.ReceivedMessage, buf []driver.Delivery, reserved int) int {
	if len(msgs) == 0 {
		r.unreserve(reserved)
		return 0
	}
	b := &batch{ds: make([]delivery, len(msgs)), open: len(msgs)}
	ds := b.ds
	ids := make([]string, len(msgs))
	bytes := 0
	for i, rm := range msgs {
		m := rm.GetMessage()
		wm := pubsubwire.Message{Data: m.GetData(), Attributes: m.GetAttributes(), OrderingKey: m.GetOrderingKey(),
			ID: m.GetMessageId(), PublishTime: m.GetPublishTime().AsTime()}
		d := &ds[i]
		d.r, d.b, d.ackID, d.msgID, d.size = r, b, rm.GetAckId(), wm.ID, wm.Size()
		d.ev, _, d.decodeErr = pubsubwire.Decode(&wm, r.origin)
		if a := int(rm.GetDeliveryAttempt()); a > 0 {
			d.attempt = a
		} else if r.attempts != nil {
			d.attempt = r.attempts.Attempt(d.msgID)
		} else {
			d.attempt = 1
		}
		ids[i] = d.ackID
		bytes += d.size
	}
	r.mu.Lock()
	r.reserved -= reserved
	r.wakeLocked()
	if r.closed {
		r.mu.Unlock()
		r.settler.modack(0, ids...) // give them back at once
		return 0
	}
	r.outstanding += len(ds)
	r.outBytes += bytes
	r.settled = 0
	r.batches[b] = struct{}{}
	for i := range ds {
		buf[i] = &ds[i]
	}
	r.mu.Unlock()
	if r.receiptModack {
		r.settler.modack(r.leaseSecs, ids...)
	}
	return len(ds)
}

// batch is the deliveries of one pull; open counts those not settled.
type batch struct {
	ds   []delivery
	open int
}

// release accounts for a settled delivery.
func (r *receiver) release(d *delivery) {
	r.mu.Lock()
	if _, ok := r.batches[d.b]; ok {
		r.outstanding--
		r.outBytes -= d.size
		if d.b.open--; d.b.open == 0 {
			delete(r.batches, d.b)
		}
	}
	r.settled++
	r.wakeLocked()
	r.mu.Unlock()
}

// Close stops receiving: pulls in flight end, deliveries not yet settled
// are nacked so Pub/Sub redelivers them at once, and queued settlements are
// sent within ctx.
func (r *receiver) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.wakeLocked()
	r.mu.Unlock()
	r.cancel()
	r.pulls.Wait()

	r.mu.Lock()
	var ids []string
	for b := range r.batches {
		for i := range b.ds {
			if d := &b.ds[i]; d.state.CompareAndSwap(pending, settled) {
				ids = append(ids, d.ackID)
				if r.attempts != nil {
					r.attempts.Failed(d.msgID)
				}
			}
		}
	}
	clear(r.batches)
	r.outstanding, r.outBytes = 0, 0
	r.mu.Unlock()
	if len(ids) > 0 {
		r.settler.modack(0, ids...)
	}
	err := r.settler.close(ctx)
	r.p.receivers.Remove(r)
	if err != nil {
		return fmt.Errorf("gcp: close receiver of %q: sending settlements: %w", r.sub, err)
	}
	return nil
}
