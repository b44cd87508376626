package sbtest

import (
	"sort"
	"time"
)

// Message sessions of session-aware entities (st.mu guards all of it).

// msgSession is one message session of a session-aware entity.
type msgSession struct {
	id       string
	avail    seqHeap
	lockedBy *link
	until    time.Time
	state    []byte
	updated  time.Time
	count    int // messages of the session in the store, any state
}

// acceptWait is a receive link waiting for the next session with messages.
type acceptWait struct {
	l     *link
	timer *time.Timer
}

// releaseSessionLocked unlocks a session: its locked messages count a
// failed delivery and are available again.
func (st *store) releaseSessionLocked(ms *msgSession) {
	ms.lockedBy = nil
	var back []*message
	for tok, m := range st.locked {
		if m.ms == ms {
			delete(st.locked, tok)
			back = append(back, m)
		}
	}
	sort.Slice(back, func(i, j int) bool { return back[i].seq < back[j].seq })
	for _, m := range back {
		st.failLocked(m)
	}
}

// assignSessionsLocked gives waiting links the sessions that have
// messages and no owner, oldest message first.
func (st *store) assignSessionsLocked() {
	for len(st.waiters) > 0 {
		ms := st.freeSessionLocked()
		if ms == nil {
			return
		}
		w := st.waiters[0]
		st.waiters = st.waiters[1:]
		w.timer.Stop()
		st.lockSessionLocked(ms, w.l)
		w.l.s.c.completeSessionAttach(w.l, ms)
	}
}

func (st *store) freeSessionLocked() *msgSession {
	var best *msgSession
	for _, ms := range st.sessions {
		if ms.lockedBy != nil || ms.avail.Len() == 0 {
			continue
		}
		if best == nil || ms.avail[0].seq < best.avail[0].seq {
			best = ms
		}
	}
	return best
}

func (st *store) lockSessionLocked(ms *msgSession, l *link) {
	ms.lockedBy = l
	ms.until = time.Now().Add(st.opts.LockDuration)
	l.msess = ms
}
