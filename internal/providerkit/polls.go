package providerkit

import (
	"context"
	"errors"
	"sync"
)

// ErrPollsClosed is returned by Polls.Receive once Close was called; the
// receiver maps it onto driver.ErrClosed.
var ErrPollsClosed = errors.New("providerkit: receiver closed")

// Polls runs the long polls of a receiver whose service leases messages to
// a poll (SQS ReceiveMessage, Event Grid receive) so that a Receive whose
// context ends never cuts a poll short. A cancelled poll may still have
// taken messages on the service's side, which then stay leased to nobody
// until their visibility timeout or lock expires; so instead the poll runs
// on (on the provider's lifetime context) and what it takes is kept for the
// next Receive, or returned through the receiver's return function once the
// receiver has closed. The next Receive waits for a poll left running
// before it starts another.
//
// The zero value is not usable; see NewPolls.
type Polls[D any] struct {
	life    context.Context
	running *sync.WaitGroup
	ret     func([]D)

	mu      sync.Mutex
	kept    []D        // taken by polls nobody waited for, oldest first
	left    []*call[D] // polls running that no Receive waits for
	closed  bool       // Close was called
	closing chan struct{}
}

type call[D any] struct {
	done  chan struct{} // closed when the poll returned (mu held)
	got   []D
	err   error
	owned bool // a Receive waits for it (mu held)
}

// NewPolls returns the polls of one receiver. Polls run on life (the
// provider's lifetime: cancelling it ends them) and are counted in running,
// so the provider can wait for them when it closes. ret returns what a poll
// took after Close (Nack without delay); it must not block for long.
func NewPolls[D any](life context.Context, running *sync.WaitGroup, ret func([]D)) *Polls[D] {
	return &Polls[D]{life: life, running: running, ret: ret, closing: make(chan struct{})}
}

// Receive returns up to max deliveries: kept ones first, else those of the
// poll left running, else of a new poll(life, max). It returns ctx.Err()
// when ctx ends and ErrPollsClosed after Close; the poll it waited for then
// runs on. A poll's error is returned by the Receive that waits for it.
// Empty polls are repeated.
func (p *Polls[D]) Receive(ctx context.Context, max int, poll func(ctx context.Context, max int) ([]D, error)) ([]D, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPollsClosed
		}
		if len(p.kept) > 0 {
			n := min(max, len(p.kept))
			out := append([]D(nil), p.kept[:n]...)
			p.kept = append(p.kept[:0], p.kept[n:]...)
			p.mu.Unlock()
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		var c *call[D]
		if len(p.left) > 0 {
			c = p.left[0]
			p.left = p.left[1:]
		} else {
			c = &call[D]{done: make(chan struct{})}
			p.running.Add(1)
			go p.run(c, max, poll)
		}
		c.owned = true
		p.mu.Unlock()

		var stop error
		select {
		case <-c.done:
		case <-ctx.Done():
			stop = ctx.Err()
		case <-p.closing:
			stop = ErrPollsClosed
		}
		p.mu.Lock()
		select {
		case <-c.done:
		default:
			c.owned = false
			p.left = append(p.left, c)
			p.mu.Unlock()
			return nil, stop
		}
		// The poll returned (maybe just as ctx ended: its deliveries are
		// handed out all the same, unless the receiver closed).
		if stop == ErrPollsClosed {
			late := c.got
			p.mu.Unlock()
			if len(late) > 0 {
				p.ret(late)
			}
			return nil, stop
		}
		if c.err != nil {
			p.mu.Unlock()
			if stop != nil {
				return nil, stop
			}
			return nil, c.err
		}
		if len(c.got) > max {
			p.kept = append(p.kept, c.got[max:]...)
			c.got = c.got[:max]
		}
		p.mu.Unlock()
		if len(c.got) > 0 {
			return c.got, nil
		}
		if stop != nil {
			return nil, stop
		}
	}
}

func (p *Polls[D]) run(c *call[D], max int, poll func(ctx context.Context, max int) ([]D, error)) {
	defer p.running.Done()
	got, err := poll(p.life, max)
	p.mu.Lock()
	c.got, c.err = got, err
	close(c.done)
	var late []D
	if !c.owned {
		for i, x := range p.left {
			if x == c {
				p.left = append(p.left[:i:i], p.left[i+1:]...)
				break
			}
		}
		if p.closed {
			late = got
		} else {
			p.kept = append(p.kept, got...)
		}
	}
	p.mu.Unlock()
	if len(late) > 0 {
		p.ret(late)
	}
}

// Close ends Receive calls (they return ErrPollsClosed) and returns what
// was kept, for the receiver to give back. Polls still running are not
// cancelled: each gives what it takes to the return function (the
// provider's lifetime context ends them).
func (p *Polls[D]) Close() []D {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.closing)
	kept := p.kept
	p.kept = nil
	return kept
}

// Wait waits for wg until ctx ends.
func Wait(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
