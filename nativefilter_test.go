package crossbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/memory"
)

// reportsFilter is a memory provider whose receivers claim a native filter,
// without filtering anything: what the route then matches shows whether
// the portable layer trusted the claim.
type reportsFilter struct {
	*memory.Provider
	native driver.NativeFilter

	mu    sync.Mutex
	specs []driver.SubscriptionSpec
}

func (p *reportsFilter) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	p.mu.Lock()
	p.specs = append(p.specs, spec)
	p.mu.Unlock()
	r, err := p.Provider.Subscribe(ctx, spec)
	return filteringReceiver{Receiver: r, native: p.native}, err
}

type filteringReceiver struct {
	driver.Receiver
	native driver.NativeFilter
}

func (r filteringReceiver) NativeFilter() driver.NativeFilter { return r.native }

// A route matches every delivery locally unless its receiver reports that
// the subscription's native filter is exactly the route's pattern.
func TestRouteSkipsLocalMatchingOnlyForAnExactNativeFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		native driver.NativeFilter
		// wantOther: the non-matching event reaches the handler (it would
		// not have been delivered by a service applying the filter).
		wantOther bool
	}{
		{"NoNativeFilter", driver.NativeFilter{}, false},
		{"SupersetNativeFilter", driver.NativeFilter{Expression: `attributes.ce-type = "order.placed"`}, false},
		{"ExactNativeFilter", driver.NativeFilter{Expression: `attributes.ce-type = "order.placed"`, Exact: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			p := &reportsFilter{Provider: memory.New(memory.Options{AutoCreate: true}), native: tc.native}
			bus, err := crossbus.New(p)
			require.NoError(t, err)
			t.Cleanup(func() { _ = bus.Close(context.Background()) })

			var mu sync.Mutex
			var seen []string
			sub, err := bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(_ context.Context, e *crossbus.Event) error {
				mu.Lock()
				seen = append(seen, e.Type())
				mu.Unlock()
				return nil
			}), crossbus.WithFilter(crossbus.MustPattern(`{"type":["order.placed"]}`)), crossbus.WithDeadLetterTopic("dead-letters"))
			require.NoError(t, err)
			require.Len(t, p.specs, 1)
			assert.JSONEq(t, `{"type":["order.placed"]}`, p.specs[0].FilterPattern, "the route's pattern reaches the provider")
			got, ok := sub.NativeFilter()
			assert.Equal(t, tc.native.Expression != "", ok)
			assert.Equal(t, tc.native, got)

			other := crossbus.NewEvent("order.cancelled", "/shop")
			placed := crossbus.NewEvent("order.placed", "/shop")
			require.NoError(t, bus.Publish(ctx, "orders", &other, &placed))
			waitUntil(t, "the matching event", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, s := range seen {
					if s == "order.placed" {
						return true
					}
				}
				return false
			})
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tc.wantOther, len(seen) == 2, "handled: %v", seen)
		})
	}
}
