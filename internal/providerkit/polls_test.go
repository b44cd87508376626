package providerkit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/internal/providerkit"
)

// service is a fake long-poll service: each poll waits until the test
// answers it.
type service struct {
	mu      sync.Mutex
	started int
	answers chan []int
}

func newService() *service { return &service{answers: make(chan []int)} }

func (s *service) poll(ctx context.Context, max int) ([]int, error) {
	s.mu.Lock()
	s.started++
	s.mu.Unlock()
	select {
	case got := <-s.answers:
		if len(got) == 1 && got[0] < 0 {
			return nil, errors.New("poll failed")
		}
		return got, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *service) polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

type returned struct {
	mu  sync.Mutex
	got []int
}

func (r *returned) ret(ds []int) {
	r.mu.Lock()
	r.got = append(r.got, ds...)
	r.mu.Unlock()
}

func (r *returned) all() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.got...)
}

func newPolls(t *testing.T) (*providerkit.Polls[int], *returned, context.CancelFunc, *sync.WaitGroup) {
	life, end := context.WithCancel(context.Background())
	var running sync.WaitGroup
	r := &returned{}
	t.Cleanup(func() { end(); running.Wait() })
	return providerkit.NewPolls(life, &running, r.ret), r, end, &running
}

func TestPollsAPollOutlivesTheReceiveWhoseContextEnded(t *testing.T) {
	p, _, _, _ := newPolls(t)
	svc := newService()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Receive(ctx, 10, svc.poll)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The poll still runs; what it takes is the next Receive's, and no
	// other poll was started meanwhile.
	svc.answers <- []int{1, 2, 3}
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		got, err := p.Receive(ctx, 2, svc.poll)
		if err != nil {
			return false
		}
		assert.Equal(t, []int{1, 2}, got, "kept deliveries first, oldest first, at most max")
		return true
	}, 5*time.Second, 20*time.Millisecond)
	got, err := p.Receive(context.Background(), 10, svc.poll)
	require.NoError(t, err)
	assert.Equal(t, []int{3}, got)
	assert.Equal(t, 1, svc.polls(), "the deliveries were kept, not polled again")
}

func TestPollsTheNextReceiveWaitsForThePollLeftRunning(t *testing.T) {
	p, _, _, _ := newPolls(t)
	svc := newService()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := p.Receive(ctx, 10, svc.poll)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	assert.Equal(t, 1, svc.polls(), "one poll, waited for by each Receive in turn")
	done := make(chan []int)
	go func() {
		got, _ := p.Receive(context.Background(), 10, svc.poll)
		done <- got
	}()
	svc.answers <- []int{7}
	assert.Equal(t, []int{7}, <-done)
	assert.Equal(t, 1, svc.polls())
}

func TestPollsAfterCloseWhatAPollTakesIsReturned(t *testing.T) {
	p, ret, _, _ := newPolls(t)
	svc := newService()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := p.Receive(ctx, 10, svc.poll)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	svc.answers <- []int{1}
	require.Eventually(t, func() bool { return svc.polls() == 1 }, time.Second, time.Millisecond)
	// A second poll left running when the receiver closes.
	time.Sleep(20 * time.Millisecond)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	got, err := p.Receive(ctx, 10, svc.poll)
	cancel()
	require.NoError(t, err)
	require.Equal(t, []int{1}, got)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = p.Receive(ctx, 10, svc.poll)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	assert.Empty(t, p.Close(), "nothing kept")
	svc.answers <- []int{4, 5}
	require.Eventually(t, func() bool { return len(ret.all()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []int{4, 5}, ret.all(), "what the running poll took after Close is returned")
	_, err = p.Receive(context.Background(), 10, svc.poll)
	require.ErrorIs(t, err, providerkit.ErrPollsClosed)
}

func TestPollsCloseReturnsWhatWasKeptAndEndsAWaitingReceive(t *testing.T) {
	p, ret, _, _ := newPolls(t)
	svc := newService()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := p.Receive(ctx, 10, svc.poll)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	svc.answers <- []int{1, 2}
	time.Sleep(50 * time.Millisecond) // the poll's deliveries are kept

	errc := make(chan error)
	p2, ret2, _, _ := newPolls(t)
	svc2 := newService()
	go func() {
		_, err := p2.Receive(context.Background(), 10, svc2.poll)
		errc <- err
	}()
	require.Eventually(t, func() bool { return svc2.polls() == 1 }, time.Second, time.Millisecond)
	assert.Empty(t, p2.Close())
	require.ErrorIs(t, <-errc, providerkit.ErrPollsClosed, "Close ends a Receive that waits")
	svc2.answers <- []int{9}
	require.Eventually(t, func() bool { return len(ret2.all()) == 1 }, 5*time.Second, 5*time.Millisecond)

	assert.Equal(t, []int{1, 2}, p.Close(), "Close hands back what was kept")
	assert.Empty(t, ret.all())
}

func TestPollsAPollErrorGoesToTheReceiveThatWaits(t *testing.T) {
	p, _, _, _ := newPolls(t)
	svc := newService()
	errc := make(chan error)
	go func() {
		_, err := p.Receive(context.Background(), 10, svc.poll)
		errc <- err
	}()
	svc.answers <- []int{-1}
	require.EqualError(t, <-errc, "poll failed")
}

func TestPollsEndWithTheProviderLifetime(t *testing.T) {
	p, _, end, running := newPolls(t)
	svc := newService()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := p.Receive(ctx, 10, svc.poll)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	p.Close()
	end()
	running.Wait()
}
