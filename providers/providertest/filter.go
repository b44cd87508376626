package providertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// filterPattern selects the "wanted" events of testFilteredSubscription. It
// translates exactly to every native filter crossbus installs: a Pub/Sub
// filter (= and hasPrefix on ce- attributes), a Service Bus SQL rule (=
// and LIKE on cloudEvents_ properties) and an EventBridge rule pattern.
const filterPattern = `{"type":["com.example.conformance.wanted"],"source":[{"prefix":"/providertest/filter/"}]}`

// testFilteredSubscription publishes events a route's pattern matches and
// events it does not (wrong type, wrong source, a type differing only in
// case, no source prefix), the non-matching ones first. A route with the
// filter handles exactly the matching ones on every provider. At the driver
// level, a receiver opened with the pattern counts what the service
// delivered: on a harness that installs native filters, no non-matching
// event may arrive; elsewhere they arrive and the portable layer skips them.
func testFilteredSubscription(t *testing.T, e *env) {
	pattern := crossbus.MustPattern(filterPattern)
	canonical := pattern.String()
	b := e.bus()
	topic := e.topic()
	rawSub := e.subscription(topic, SubscriptionOptions{FilterPattern: canonical})
	routeSub := e.subscription(topic, SubscriptionOptions{FilterPattern: canonical})

	c := newCollector()
	s := subscribe(t, e, b, topic, routeSub, c.handler(nil), crossbus.WithFilter(pattern))
	recv, err := b.Provider().Subscribe(e.ctx, driver.SubscriptionSpec{Topic: topic, Name: rawSub, FilterPattern: canonical})
	require.NoError(t, err, "open a receiver on the filtered subscription")
	t.Cleanup(func() { _ = recv.Close(context.Background()) })

	mk := func(typ, source string, i int) *crossbus.Event {
		ev := crossbus.NewEvent(typ, source)
		_ = crossbus.SetData(&ev, map[string]int{"n": i})
		return &ev
	}
	const wantedType = "com.example.conformance.wanted"
	var unwanted, wanted []*crossbus.Event
	for i := range 3 {
		unwanted = append(unwanted,
			mk("com.example.conformance.unwanted", "/providertest/filter/a", i),
			mk(wantedType, "/providertest/elsewhere", i),
			mk("com.example.conformance.Wanted", "/providertest/filter/a", i),
			mk(wantedType, "/providertest/filter", i)) // no trailing slash: not the prefix
		wanted = append(wanted, mk(wantedType, fmt.Sprintf("/providertest/filter/%d", i), i))
	}
	require.NoError(t, b.Publish(e.ctx, topic, unwanted...))
	require.NoError(t, b.Publish(e.ctx, topic, wanted...))
	isWanted := map[string]bool{}
	for _, ev := range wanted {
		isWanted[ev.ID()] = true
	}

	// The driver level: what the service delivered.
	var mu sync.Mutex
	got, stray := map[string]bool{}, map[string]string{}
	var recvErr error
	count := func(ctx context.Context) {
		buf := make([]driver.Delivery, 16)
		for {
			n, err := recv.Receive(ctx, buf)
			for _, d := range buf[:n] {
				ev := d.Event()
				mu.Lock()
				if isWanted[ev.ID()] {
					got[ev.ID()] = true
				} else {
					stray[ev.ID()] = ev.Type() + " from " + ev.Source()
				}
				mu.Unlock()
				_ = d.Ack(context.WithoutCancel(ctx))
			}
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return
			case fatalReceiveError(err):
				mu.Lock()
				recvErr = err
				mu.Unlock()
				return
			default: // transient, as the portable layer takes it: try again
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.f.Timeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		count(ctx)
	}()
	deadline := time.Now().Add(e.f.Timeout)
	for {
		mu.Lock()
		n, rerr := len(got), recvErr
		mu.Unlock()
		require.NoError(t, rerr, "Receive")
		if n == len(wanted) {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the receiver got %d of the %d matching events in %v", n, len(wanted), e.f.Timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Anything the service was going to deliver has had its chance: the
	// non-matching events were published first.
	time.Sleep(time.Second)
	cancel()
	<-done

	// The route: exactly the matching events, on every provider.
	c.waitFor(t, e.f.Timeout, "the matching events", func() bool { return c.distinct() >= len(wanted) })
	time.Sleep(200 * time.Millisecond)
	c.mu.Lock()
	for id := range c.count {
		assert.True(t, isWanted[id], "the route handled event %s, which its filter does not match", id)
	}
	assert.Len(t, c.count, len(wanted))
	c.mu.Unlock()

	mu.Lock()
	defer mu.Unlock()
	native, pushed := s.NativeFilter()
	if e.f.NativeFilters {
		assert.Empty(t, stray, "the service delivered %d events the native filter excludes", len(stray))
		if pushed {
			t.Logf("native filter: %s (exact: %v)", native.Expression, native.Exact)
		}
		return
	}
	t.Logf("no native filter: %d of %d non-matching events reached the receiver and routes skip them locally", len(stray), len(unwanted))
}

// fatalReceiveError reports a Receive error retrying cannot fix (see
// driver.Receiver).
func fatalReceiveError(err error) bool {
	for _, fatal := range []error{driver.ErrClosed, driver.ErrSubscriptionNotFound, driver.ErrTopicNotFound,
		driver.ErrUnauthorized, driver.ErrInvalidOption, driver.ErrNotSupported} {
		if errors.Is(err, fatal) {
			return true
		}
	}
	return driver.IsPermanent(err)
}
