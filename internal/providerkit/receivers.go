package providerkit

import (
	"context"
	"errors"
	"sync"
)

// Closer is what a Receivers set holds: a receiver that can be stopped.
type Closer interface {
	comparable
	Close(ctx context.Context) error
}

// Receivers is the set of a provider's open receivers, and whether the
// provider is closed. The zero value is an open, empty set. One policy
// holds for every provider: Close stops every receiver still open, passing
// its context to each, and returns their errors joined.
type Receivers[R Closer] struct {
	mu     sync.Mutex
	open   map[R]struct{}
	closed bool
}

// Add records an open receiver. It reports false, and records nothing, once
// the set is closed: the caller then stops the receiver itself and fails
// with driver.ErrClosed.
func (s *Receivers[R]) Add(r R) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.open == nil {
		s.open = map[R]struct{}{}
	}
	s.open[r] = struct{}{}
	return true
}

// Remove forgets a receiver (its Close calls this).
func (s *Receivers[R]) Remove(r R) {
	s.mu.Lock()
	delete(s.open, r)
	s.mu.Unlock()
}

// Closed reports whether Close was called.
func (s *Receivers[R]) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Len is the number of open receivers.
func (s *Receivers[R]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// Close marks the set closed and stops every receiver it holds with ctx,
// which bounds each receiver's wait. It returns the receivers' errors
// joined, and first = false (with no error) when the set was already
// closed, so that the provider releases the rest of its resources once.
func (s *Receivers[R]) Close(ctx context.Context) (first bool, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, nil
	}
	s.closed = true
	rs := make([]R, 0, len(s.open))
	for r := range s.open {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	var errs []error
	for _, r := range rs {
		if err := r.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}
