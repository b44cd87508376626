package kafka

import (
	"sync"
)

// partition tracks the records of one assigned partition from the moment
// they are fetched until they are settled, so that the offset committed for
// it never passes a record that is not settled yet: the committable offset
// is one past the longest settled prefix of what was fetched, however the
// handlers finish.
type partition struct {
	id int32

	mu       sync.Mutex
	pending  []*entry // fetched records in offset order; pending[head:] are live
	head     int
	next     int64 // offset expected next from the fetcher (older ones are stale)
	mark     int64 // committable offset: one past the settled prefix (-1: none)
	epoch    int32 // leader epoch of the record before mark
	commit   int64 // last offset committed (-1: none)
	out      int   // records handed to handlers and not settled
	revoking bool  // partition leaving: hand out nothing more, commit nothing after
	idle     chan struct{}
}

// entry is one fetched record's place in its partition.
type entry struct {
	offset  int64
	epoch   int32
	settled bool
}

func newPartition(id int32) *partition {
	return &partition{id: id, next: -1, mark: -1, commit: -1}
}

// add appends a fetched record; it reports false for records that must not
// be handed out (the partition is leaving, or the record was fetched before).
func (p *partition) add(offset int64, epoch int32) (*entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoking || offset < p.next {
		return nil, false
	}
	e := &entry{offset: offset, epoch: epoch}
	p.pending = append(p.pending, e)
	p.next = offset + 1
	return e, true
}

// handOut counts a record given to a handler; false if the partition is
// leaving (the record is then dropped: its next owner fetches it again).
func (p *partition) handOut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoking {
		return false
	}
	p.out++
	return true
}

// takeBack uncounts a handed-out record that was not settled (a nack).
func (p *partition) takeBack() {
	p.mu.Lock()
	p.out--
	p.signalIdle()
	p.mu.Unlock()
}

// settle marks a handed-out record done and moves the committable offset
// over the settled prefix.
func (p *partition) settle(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.settled = true
	p.out--
	for p.head < len(p.pending) && p.pending[p.head].settled {
		s := p.pending[p.head]
		p.mark, p.epoch = s.offset+1, s.epoch
		p.pending[p.head] = nil
		p.head++
	}
	if p.head > 64 && p.head*2 >= len(p.pending) {
		n := copy(p.pending, p.pending[p.head:])
		clear(p.pending[n:])
		p.pending = p.pending[:n]
		p.head = 0
	}
	p.signalIdle()
}

func (p *partition) signalIdle() {
	if p.out == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// startRevoke stops handing out records and returns a channel closed once
// no handed-out record is unsettled.
func (p *partition) startRevoke() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revoking = true
	ch := make(chan struct{})
	if p.out == 0 {
		close(ch)
		return ch
	}
	p.idle = ch
	return ch
}

// committable returns the offset to commit, if it moved since the last
// commit and the partition is still owned (or is being revoked now, for the
// final commit).
func (p *partition) committable(final bool) (offset int64, epoch int32, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoking && !final {
		return 0, 0, false
	}
	if p.mark < 0 || p.mark <= p.commit {
		return 0, 0, false
	}
	return p.mark, p.epoch, true
}

// committed records a successful commit.
func (p *partition) committed(offset int64) {
	p.mu.Lock()
	if offset > p.commit {
		p.commit = offset
	}
	p.mu.Unlock()
}
