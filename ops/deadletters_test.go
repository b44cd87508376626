package ops_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/ops"
)

// watched wraps a provider's dead-letter receivers to record what a read
// does with them: whether a delivery is settled after its receiver closed
// (Service Bus refuses that: a message is settled on the link that received
// it), and whether a lease renewal reaches a delivery after it was returned
// (a later SQS visibility change hides it again). Renewals are slow, so a
// read that ends while one is under way shows whether it waits for it.
type watched struct {
	driver.Provider
	inner driver.DeadLetterReader

	mu                sync.Mutex
	settledAfterClose int
	renewedAfterNack  int
	renewals          int
	nacks             int
}

func (w *watched) SubscribeDeadLetters(ctx context.Context, topic, sub string) (driver.Receiver, error) {
	r, err := w.inner.SubscribeDeadLetters(ctx, topic, sub)
	if err != nil {
		return nil, err
	}
	return &watchedReceiver{w: w, Receiver: r}, nil
}

type watchedReceiver struct {
	driver.Receiver
	w      *watched
	mu     sync.Mutex
	closed bool
}

func (r *watchedReceiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	n, err := r.Receiver.Receive(ctx, buf)
	for i := range buf[:n] {
		buf[i] = &watchedDelivery{Delivery: buf[i], r: r}
	}
	return n, err
}

func (r *watchedReceiver) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.Receiver.Close(ctx)
}

func (r *watchedReceiver) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

type watchedDelivery struct {
	driver.Delivery
	r *watchedReceiver

	mu     sync.Mutex
	nacked bool
}

func (d *watchedDelivery) settle() {
	if d.r.isClosed() {
		d.r.w.mu.Lock()
		d.r.w.settledAfterClose++
		d.r.w.mu.Unlock()
	}
}

func (d *watchedDelivery) Ack(ctx context.Context) error {
	d.settle()
	return d.Delivery.Ack(ctx)
}

func (d *watchedDelivery) Nack(ctx context.Context, delay time.Duration) error {
	d.settle()
	d.mu.Lock()
	d.nacked = true
	d.mu.Unlock()
	d.r.w.mu.Lock()
	d.r.w.nacks++
	d.r.w.mu.Unlock()
	return d.Delivery.Nack(ctx, delay)
}

func (d *watchedDelivery) ExtendLease(ctx context.Context, lease time.Duration) error {
	d.r.w.mu.Lock()
	d.r.w.renewals++
	d.r.w.mu.Unlock()
	select { // a renewal takes a while (a round trip to the service)
	case <-time.After(150 * time.Millisecond):
	case <-ctx.Done():
	}
	d.mu.Lock()
	late := d.nacked
	d.mu.Unlock()
	if late {
		d.r.w.mu.Lock()
		d.r.w.renewedAfterNack++
		d.r.w.mu.Unlock()
	}
	return nil
}

func (w *watched) counts() (settledAfterClose, renewedAfterNack, renewals, nacks int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.settledAfterClose, w.renewedAfterNack, w.renewals, w.nacks
}

// A read returns the dead letters it holds while its receiver is still
// open, then closes it, and no lease renewal reaches a dead letter after it
// was returned: reads one after another each see every dead letter.
func TestReadsReturnDeadLettersBeforeClosingAndStopRenewingFirst(t *testing.T) {
	mem := memBus(t)
	w := &watched{Provider: mem.Provider(), inner: mem.Provider().(driver.DeadLetterReader)}
	b, err := crossbus.New(w)
	require.NoError(t, err)
	const n = 6
	ctx := context.Background()
	s, err := mem.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
		return crossbus.Permanent(fmt.Errorf("order %s rejected", e.ID()))
	}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(ctx) })
	for range n {
		e := crossbus.NewEvent("com.example.order", "/shop")
		require.NoError(t, mem.Publish(ctx, "orders", &e))
	}
	// Idle ends each read about when the second renewal sweep runs (one
	// each second), while its renewals are under way.
	d, err := ops.NewDeadLetters(b, ops.Source{Topic: "orders", Subscription: "billing"}, ops.Options{Wait: 5 * time.Second, Idle: 1900 * time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := d.List(ctx, ops.ListOptions{})
		return err == nil && p.Total == n
	}, 20*time.Second, 50*time.Millisecond)
	for range 2 {
		p, err := d.List(ctx, ops.ListOptions{})
		require.NoError(t, err)
		assert.Equal(t, n, p.Total, "the next read sees every dead letter")
	}
	settledAfterClose, renewedAfterNack, renewals, nacks := w.counts()
	assert.Zero(t, settledAfterClose, "dead letters are returned before the receiver closes")
	assert.Zero(t, renewedAfterNack, "no renewal runs after a dead letter was returned")
	assert.Positive(t, renewals, "leases were renewed while the reads held the dead letters")
	assert.GreaterOrEqual(t, nacks, 2*n)
}
