package crossbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	_ "github.com/crossbus/crossbus/providers/memory"
)

// recordingProvider records publish calls; a unit-test double for the
// portable layer's batching and error mapping.
type recordingProvider struct {
	caps    driver.Capabilities
	mu      sync.Mutex
	batches [][]*crossbus.Event
	fail    func(batch []*crossbus.Event) error
}

func (p *recordingProvider) Publish(ctx context.Context, topic string, evs []*crossbus.Event) error {
	p.mu.Lock()
	p.batches = append(p.batches, append([]*crossbus.Event(nil), evs...))
	p.mu.Unlock()
	if p.fail != nil {
		return p.fail(evs)
	}
	return nil
}
func (p *recordingProvider) Subscribe(context.Context, driver.SubscriptionSpec) (driver.Receiver, error) {
	return nil, crossbus.ErrNotSupported
}
func (p *recordingProvider) Capabilities() driver.Capabilities { return p.caps }
func (p *recordingProvider) As(any) bool                       { return false }
func (p *recordingProvider) Close(context.Context) error       { return nil }

func mkEvents(n int) []*crossbus.Event {
	out := make([]*crossbus.Event, n)
	for i := range out {
		e := crossbus.NewEvent("com.example.t", "/t")
		_ = crossbus.SetData(&e, fmt.Sprintf("event %d", i))
		out[i] = &e
	}
	return out
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := crossbus.Open(ctx, "nope://x")
	require.ErrorIs(t, err, crossbus.ErrUnknownScheme)
	assert.Contains(t, err.Error(), "mem", "the error lists registered schemes")
	_, err = crossbus.Open(ctx, "no-scheme-here")
	assert.ErrorIs(t, err, crossbus.ErrInvalidURL)
	_, err = crossbus.Open(ctx, "mem://%zz")
	assert.ErrorIs(t, err, crossbus.ErrInvalidURL)
	_, err = crossbus.Open(ctx, "mem://?bogus=1")
	require.ErrorIs(t, err, crossbus.ErrInvalidURL)
	assert.Contains(t, err.Error(), "bogus")
	_, err = crossbus.Open(ctx, "mem://?ackdeadline=soon")
	assert.ErrorContains(t, err, "ackdeadline")
	b, err := crossbus.Open(ctx, "mem://")
	require.NoError(t, err)
	require.NoError(t, b.Close(ctx))
	assert.ErrorIs(t, b.Publish(ctx, "topic", mkEvents(1)...), crossbus.ErrClosed)
}

func TestPublishBatchesWithinProviderLimits(t *testing.T) {
	evs := mkEvents(25)
	p := &recordingProvider{caps: driver.Capabilities{MaxBatchCount: 10}}
	b, err := crossbus.New(p)
	require.NoError(t, err)
	require.NoError(t, b.Publish(context.Background(), "topic", evs...))
	require.Len(t, p.batches, 3)
	assert.Len(t, p.batches[0], 10)
	assert.Len(t, p.batches[2], 5)
	assert.Same(t, evs[24], p.batches[2][4], "order is kept")

	one := driver.EncodedSize(evs[0])
	p2 := &recordingProvider{caps: driver.Capabilities{MaxBatchBytes: 3*one + one/2}}
	b2, _ := crossbus.New(p2)
	require.NoError(t, b2.Publish(context.Background(), "topic", evs[:7]...))
	require.Len(t, p2.batches, 3)
	assert.Len(t, p2.batches[0], 3)
	assert.Len(t, p2.batches[2], 1)
}

func TestPublishRefusesInvalidAndSendsTheRest(t *testing.T) {
	evs := mkEvents(4)
	bad := evs[2].Clone()
	v := bad.Context.AsV1()
	v.Type = ""
	bad.Context = v
	evs[2] = &bad
	p := &recordingProvider{caps: driver.Capabilities{MaxEventBytes: 10_000}}
	big := crossbus.NewEvent("com.example.t", "/t")
	require.NoError(t, crossbus.SetData(&big, strings.Repeat("x", 20_000)))
	evs = append(evs, &big)
	b, _ := crossbus.New(p)
	err := b.Publish(context.Background(), "topic", evs...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{2, 4}, pe.FailedIndexes())
	assert.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	assert.ErrorIs(t, err, crossbus.ErrTooLarge)
	assert.Contains(t, err.Error(), "limit of 10000 bytes")
	require.Len(t, p.batches, 1)
	assert.Equal(t, []*crossbus.Event{evs[0], evs[1], evs[3]}, p.batches[0])
}

func TestPublishMapsProviderFailuresToOriginalIndexes(t *testing.T) {
	evs := mkEvents(6)
	bad := evs[1].Clone()
	v := bad.Context.AsV1()
	v.ID = ""
	bad.Context = v
	evs[1] = &bad
	throttled := errors.New("throttled")
	p := &recordingProvider{caps: driver.Capabilities{MaxBatchCount: 2}, fail: func(batch []*crossbus.Event) error {
		// the second event of every batch fails
		if len(batch) < 2 {
			return nil
		}
		return &crossbus.PublishError{Failed: []crossbus.EventError{{Index: 1, EventID: batch[1].ID(), Err: throttled}}}
	}}
	b, _ := crossbus.New(p)
	err := b.Publish(context.Background(), "topic", evs...)
	var pe *crossbus.PublishError
	require.ErrorAs(t, err, &pe)
	// sent: 0,2 | 3,4 | 5 -> provider fails 2 and 4; 1 invalid
	assert.Equal(t, []int{1, 2, 4}, pe.FailedIndexes())
	assert.ErrorIs(t, err, throttled)

	down := errors.New("connection refused")
	p.fail = func([]*crossbus.Event) error { return down }
	err = b.Publish(context.Background(), "topic", mkEvents(3)...)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, []int{0, 1, 2}, pe.FailedIndexes())
	assert.ErrorIs(t, err, down)
}

func TestPublishValidatesArguments(t *testing.T) {
	b, _ := crossbus.New(&recordingProvider{})
	ctx := context.Background()
	assert.ErrorIs(t, b.Publish(ctx, "", mkEvents(1)...), crossbus.ErrInvalidName)
	assert.NoError(t, b.Publish(ctx, "topic"))
	err := b.Publish(ctx, "topic", nil)
	assert.ErrorIs(t, err, crossbus.ErrInvalidEvent)
	_, err = crossbus.New(nil)
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestRetryPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    crossbus.RetryPolicy
		want string
	}{
		{"negative attempts", crossbus.RetryPolicy{MaxAttempts: -1, Multiplier: 1}, "MaxAttempts must be at least 1, got -1"},
		{"negative backoff", crossbus.RetryPolicy{MaxAttempts: 1, InitialBackoff: -2, Multiplier: 1}, "InitialBackoff"},
		{"negative jitter", crossbus.RetryPolicy{Jitter: -0.5}, "Jitter"},
		{"max below initial", crossbus.RetryPolicy{MaxAttempts: 1, InitialBackoff: 2, MaxBackoff: 1, Multiplier: 1}, "MaxBackoff"},
		{"multiplier below one", crossbus.RetryPolicy{MaxAttempts: 1, Multiplier: 0.5}, "Multiplier"},
		{"jitter above one", crossbus.RetryPolicy{MaxAttempts: 1, Multiplier: 1, Jitter: 2}, "Jitter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			require.ErrorIs(t, err, crossbus.ErrInvalidOption)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Zero fields take the defaults; NoBackoff and NoJitter say "none".
	short := crossbus.RetryPolicy{MaxAttempts: 3}
	require.NoError(t, short.Validate())
	assert.True(t, short.Exhausted(3))
	assert.False(t, short.Exhausted(2))
	for i := 0; i < 50; i++ {
		d := short.Backoff(1)
		assert.True(t, d > 0 && d <= time.Second, "default backoff %v", d)
	}
	now := crossbus.RetryPolicy{InitialBackoff: crossbus.NoBackoff}
	require.NoError(t, now.Validate())
	assert.Zero(t, now.Backoff(1))
	assert.Zero(t, now.Backoff(9))
	exact := crossbus.RetryPolicy{InitialBackoff: time.Second, Jitter: crossbus.NoJitter}
	assert.Equal(t, 2*time.Second, exact.Backoff(2))

	p := crossbus.DefaultRetryPolicy()
	require.NoError(t, p.Validate())
	p.Jitter = crossbus.NoJitter
	assert.Equal(t, p.InitialBackoff, p.Backoff(1))
	assert.Equal(t, 2*p.InitialBackoff, p.Backoff(2))
	assert.Equal(t, p.MaxBackoff, p.Backoff(60), "capped")
	assert.Equal(t, p.MaxBackoff, p.Backoff(5000), "no overflow")
	p.Jitter = 0.5
	for i := 0; i < 100; i++ {
		d := p.Backoff(3)
		assert.True(t, d >= 2*p.InitialBackoff && d <= 4*p.InitialBackoff, "jittered delay %v out of range", d)
	}
	assert.True(t, p.Exhausted(5))
	assert.False(t, p.Exhausted(4))
}
