package chain

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// timerQueue holds instance wake-up times. Entries may repeat or be stale:
// a tick re-reads the instance and does only what is due.
type timerQueue struct {
	mu     sync.Mutex
	h      timerHeap
	queued map[timer]bool // entries in h, so a repeated push adds nothing
}

type timer struct {
	at time.Time
	id string
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (q *timerQueue) push(at time.Time, id string) {
	t := timer{at: at.Round(0), id: id}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[t] {
		return
	}
	if q.queued == nil {
		q.queued = map[timer]bool{}
	}
	q.queued[t] = true
	heap.Push(&q.h, t)
}

// due pops the entries due at now and returns them with the next time.
func (q *timerQueue) due(now time.Time) (ids []string, next time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	seen := map[string]bool{}
	for q.h.Len() > 0 && !q.h[0].at.After(now) {
		t := heap.Pop(&q.h).(timer)
		delete(q.queued, t)
		if !seen[t.id] {
			seen[t.id] = true
			ids = append(ids, t.id)
		}
	}
	if q.h.Len() > 0 {
		next = q.h[0].at
	}
	return ids, next
}

// schedule arms the instance's next wake-up, if it has one.
func (c *Coordinator) schedule(inst *Instance) {
	w := inst.wake()
	if w.IsZero() {
		return
	}
	c.timers.push(w, inst.ID)
	select {
	case c.wakeT <- struct{}{}:
	default:
	}
}

// runTimers ticks instances when their time comes, until ctx ends.
func (c *Coordinator) runTimers(ctx context.Context) {
	defer close(c.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		ids, next := c.timers.due(time.Now())
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			c.tick(ctx, id)
		}
		if len(ids) > 0 {
			continue // ticks may have scheduled what is due now
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-c.wakeT:
		case <-t.C:
		}
	}
}
