// Package crossbustest is a test kit for services built on crossbus: a bus on
// the in-process memory provider that records everything that happens on
// it, waits for the system to settle, and asserts on dead letters — with
// retries and delays that take no real time.
//
//	func TestBilling(t *testing.T) {
//		t.Parallel()
//		kit := crossbustest.New(t)
//		svc := billing.New(kit.Bus()) // the service adds its routes and runs its router
//		...
//		kit.Bus().Publish(ctx, "orders", &order)
//		kit.WaitHandled("billing", crossbus.TypeIs("com.example.order.placed"))
//		kit.WaitIdle()            // every follow-up event handled, nothing left in flight
//		kit.AssertNoDeadLetters()
//	}
//
// # What is recorded
//
// The kit's bus runs over a recording wrapper of a memory provider, so
// whatever runs on it — the service's own routers, subscriptions, chains,
// fan-outs — is seen without the service doing anything for it:
//
//   - every event a Publish placed on a topic (Published);
//   - every run of a route's handler, with the middleware and timeout of
//     the route, and what it returned (Handlings): runs a route's filter
//     skipped, and duplicates its idempotency store found done, are not
//     runs. The bus wraps each route's handler through a hook of the
//     portable layer, whichever Router or Subscribe added the route;
//   - how every delivery was settled — acknowledged, returned for
//     redelivery (with its delay) or dead-lettered (with the reason) —
//     per subscription (Settlements, DeadLetters).
//
// # Time
//
// By default the kit runs on a fake clock (package clocktest): the memory
// provider's leases and delayed redeliveries follow it, and so do the
// routes' in-place retries, rate limits and circuit breakers (routes take
// the provider's clock unless they set crossbus.WithClock). The kit's waits
// move the clock on by themselves: when nothing has happened on the bus for
// a moment and the awaited condition does not hold, the clock jumps to its
// next timer — a retry's backoff, a delayed redelivery — so a test of a
// five-attempt retry policy with one-minute backoffs finishes in
// milliseconds. A jump never reaches the lease deadline of a delivery a
// handler holds, so a slow handler's event is not redelivered under it
// (leases are an hour of fake time by default: FakeClockAckDeadline).
// WithRealClock runs the kit on the system clock instead.
//
// # Idle
//
// The system is idle when no Publish is in progress and no subscription
// the bus consumes holds an event: none waiting, leased to a handler, or
// delayed for redelivery. Work a service schedules outside the bus (its own
// timers, goroutines) is not seen.
//
// Every Kit has its own provider, so tests using it may run in parallel.
package crossbustest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/clocktest"
	"github.com/crossbus/crossbus/providers/memory"
)

// DefaultTimeout bounds the kit's waits unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// FakeClockAckDeadline is the memory provider's default lease on the fake
// clock (WithMemoryOptions can set another).
const FakeClockAckDeadline = time.Hour

// Option configures a Kit.
type Option func(*config)

type config struct {
	realClock bool
	clock     *clocktest.Clock
	timeout   time.Duration
	mem       memory.Options
	busOpts   []crossbus.BusOption
	quiet     time.Duration
}

// WithRealClock runs the kit on the system clock: retries and delayed
// redeliveries take the time they say.
func WithRealClock() Option { return func(c *config) { c.realClock = true } }

// WithClock runs the kit on a fake clock the test already has (by default
// the kit makes its own; Clock returns it).
func WithClock(clk *clocktest.Clock) Option { return func(c *config) { c.clock = clk } }

// WithTimeout bounds each wait of the kit (default DefaultTimeout), in real
// time.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMemoryOptions sets the options of the kit's memory provider
// (backlog and dead-letter bounds, the default ack deadline). AutoCreate is
// always on, and Clock is always the kit's.
func WithMemoryOptions(o memory.Options) Option { return func(c *config) { c.mem = o } }

// WithBusOptions adds options to the kit's bus (a logger, telemetry).
func WithBusOptions(opts ...crossbus.BusOption) Option {
	return func(c *config) { c.busOpts = append(c.busOpts, opts...) }
}

// Kit is a recording bus for tests. Its methods are safe for concurrent
// use.
type Kit struct {
	t       testing.TB // nil for a kit from Open
	cfg     config
	clock   *clocktest.Clock // nil on the system clock
	mem     *memory.Provider
	rec     *recorder
	bus     *crossbus.Bus
	closeMu sync.Once
}

// New returns a kit bound to t: it is closed when the test ends, and the
// Wait and Assert methods report failures to t.
func New(t testing.TB, opts ...Option) *Kit {
	t.Helper()
	k, err := Open(opts...)
	if err != nil {
		t.Fatalf("crossbustest: %v", err)
	}
	k.t = t
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.Close(ctx); err != nil {
			t.Errorf("crossbustest: close the kit's bus: %v", err)
		}
	})
	return k
}

// Open returns a kit not bound to a test, for Example functions and
// programs: use the Await methods (they return errors) and Close it. The
// Wait and Assert methods need a kit from New and panic on this one.
func Open(opts ...Option) (*Kit, error) {
	cfg := config{timeout: DefaultTimeout, quiet: 2 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.timeout <= 0 {
		return nil, fmt.Errorf("WithTimeout(%v): the timeout must be positive", cfg.timeout)
	}
	k := &Kit{cfg: cfg}
	mo := cfg.mem
	mo.AutoCreate = true
	if !cfg.realClock {
		k.clock = cfg.clock
		if k.clock == nil {
			k.clock = clocktest.New(time.Time{})
		}
		mo.Clock = k.clock
		if mo.AckDeadline == 0 {
			// Leases are extended on a real-time tick, so on the fake
			// clock a lease must outlast every jump the waits make while a
			// handler holds an event: retries in place (ordered routes)
			// sleep up to the policy's MaxBackoff, a minute by default.
			mo.AckDeadline = FakeClockAckDeadline
		}
	}
	k.mem = memory.New(mo)
	k.rec = newRecorder(k.mem, k.clock)
	bus, err := crossbus.New(&recordingProvider{Provider: k.mem, rec: k.rec}, cfg.busOpts...)
	if err != nil {
		return nil, err
	}
	k.bus = bus
	return k, nil
}

// Bus is the kit's bus: hand it to the service under test.
func (k *Kit) Bus() *crossbus.Bus { return k.bus }

// Memory is the memory provider under the bus (its Stats and DeadLetters).
func (k *Kit) Memory() *memory.Provider { return k.mem }

// Clock is the kit's fake clock, or nil with WithRealClock.
func (k *Kit) Clock() *clocktest.Clock { return k.clock }

// Close closes the bus (New's kits close at the end of the test).
func (k *Kit) Close(ctx context.Context) error {
	var err error
	k.closeMu.Do(func() { err = k.bus.Close(ctx) })
	return err
}

// Reset forgets everything recorded so far (published events, handlings,
// settlements, dead letters); the bus and its subscriptions carry on.
func (k *Kit) Reset() { k.rec.reset() }

func (k *Kit) mustT(method string) testing.TB {
	if k.t == nil {
		panic("crossbustest: " + method + " needs a kit from New(t); use the Await methods on a kit from Open")
	}
	return k.t
}
