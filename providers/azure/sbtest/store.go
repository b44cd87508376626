package sbtest

import (
	"container/heap"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// store holds the messages of one queue or subscription, or of the
// dead-letter sub-queue of one.
type store struct {
	srv   *Server
	name  string // the path as created, e.g. "orders" or "t/Subscriptions/s"
	opts  EntityOptions
	dlq   *store      // nil for a dead-letter queue
	sends *queueSends // the sending side; nil for subscriptions and DLQs

	mu       sync.Mutex
	seq      int64 // sequence numbers of queues and dead-letter queues
	all      map[int64]*message
	avail    seqHeap // available messages of a session-less entity
	sessions map[string]*msgSession
	locked   map[uuid]*message
	deferred map[int64]*message
	lockq    lockHeap
	links    []*link // attached session-less receive links
	rr       int
	waiters  []*acceptWait // links waiting for the next available session
	deleted  bool          // the entity was deleted (see Server.DeleteQueue)

	// rules of a subscription, guarded by its topic's lock (not mu).
	rules []compiledRule
}

func newStore(srv *Server, name string, o EntityOptions) *store {
	st := newBareStore(srv, name, o)
	d := newBareStore(srv, name+"/$DeadLetterQueue", o)
	d.opts.RequiresSession = false
	st.dlq = d
	return st
}

// newQueueStore is a queue: a store with a sending side.
func newQueueStore(srv *Server, name string, o EntityOptions) *store {
	st := newStore(srv, name, o)
	st.sends = &queueSends{st: st}
	st.sends.sched.init()
	if o.DuplicateDetectionWindow > 0 {
		st.sends.dedup = newDedup(o.DuplicateDetectionWindow)
	}
	return st
}

func newBareStore(srv *Server, name string, o EntityOptions) *store {
	return &store{srv: srv, name: name, opts: o, all: map[int64]*message{}, sessions: map[string]*msgSession{},
		locked: map[uuid]*message{}, deferred: map[int64]*message{}}
}

type msgState uint8

const (
	stateAvailable msgState = iota
	stateLocked
	stateDeferred
)

// message is one message in a store.
type message struct {
	seq      int64
	raw      *amqp.Message // shared between subscriptions: never modified
	enqueued time.Time
	failed   uint32 // delivery-count header: failed deliveries so far
	state    msgState
	token    uuid
	until    time.Time
	ms       *msgSession
}

// addLocked stores a new message under sequence number seq.
func (st *store) addLocked(seq int64, raw *amqp.Message, now time.Time) *message {
	m := &message{seq: seq, raw: raw, enqueued: now}
	st.all[seq] = m
	if st.opts.RequiresSession {
		id, _ := sessionID(raw)
		ms := st.sessions[id]
		if ms == nil {
			ms = &msgSession{id: id}
			st.sessions[id] = ms
		}
		ms.updated = now
		ms.count++
		m.ms = ms
		heap.Push(&ms.avail, m)
		return m
	}
	heap.Push(&st.avail, m)
	return m
}

// makeAvailableLocked puts a message back in line at its sequence position.
func (st *store) makeAvailableLocked(m *message) {
	m.state = stateAvailable
	m.token = uuid{}
	if m.ms != nil {
		heap.Push(&m.ms.avail, m)
		return
	}
	heap.Push(&st.avail, m)
}

func (st *store) removeLocked(m *message) {
	delete(st.all, m.seq)
	if m.state == stateLocked {
		delete(st.locked, m.token)
	}
	if m.state == stateDeferred {
		delete(st.deferred, m.seq)
	}
	if ms := m.ms; ms != nil {
		ms.count--
		st.dropIdleSessionLocked(ms)
	}
}

// dropIdleSessionLocked forgets a session with no messages, owner or state.
func (st *store) dropIdleSessionLocked(ms *msgSession) {
	if ms.count == 0 && ms.lockedBy == nil && ms.state == nil {
		delete(st.sessions, ms.id)
	}
}

// dispatchLocked hands available messages to links with credit.
func (st *store) dispatchLocked() {
	if st.deleted {
		return
	}
	if st.opts.RequiresSession {
		st.assignSessionsLocked()
		for _, ms := range st.sessions {
			if ms.lockedBy != nil {
				st.dispatchSessionLocked(ms)
			}
		}
		return
	}
	for st.avail.Len() > 0 {
		l := st.pickLinkLocked()
		if l == nil {
			return
		}
		st.deliverLocked(l, heap.Pop(&st.avail).(*message))
	}
}

// pickLinkLocked returns the next link with credit, round-robin.
func (st *store) pickLinkLocked() *link {
	n := len(st.links)
	for i := 0; i < n; i++ {
		l := st.links[(st.rr+i)%n]
		if l.credit > 0 && !l.detached {
			st.rr = (st.rr + i + 1) % n
			return l
		}
	}
	return nil
}

func (st *store) dispatchSessionLocked(ms *msgSession) {
	l := ms.lockedBy
	for l != nil && !l.detached && l.credit > 0 && ms.avail.Len() > 0 {
		st.deliverLocked(l, heap.Pop(&ms.avail).(*message))
	}
}

// deliverLocked sends m on l: locked (peek-lock) or removed
// (receive-and-delete).
func (st *store) deliverLocked(l *link, m *message) {
	l.credit--
	l.deliveryCount++
	if l.receiveAndDelete {
		st.removeLocked(m)
		payload, err := encodeDelivery(m, false)
		if err == nil {
			l.s.sendTransfer(l, nil, payload, 0, true, nil)
		}
		return
	}
	m.state = stateLocked
	m.token = newToken()
	if m.ms != nil {
		m.until = m.ms.until
	} else {
		m.until = time.Now().Add(st.opts.LockDuration)
		heap.Push(&st.lockq, lockEntry{until: m.until, token: m.token})
	}
	st.locked[m.token] = m
	payload, err := encodeDelivery(m, true)
	if err != nil { // cannot happen for a message that decoded: give it back
		st.makeAvailableLocked(m)
		return
	}
	l.s.sendTransfer(l, tagFor(m.token), payload, 0, false, &outDelivery{st: st, token: m.token})
}

// deleteLocked deletes the store with its entity: every receive link
// attached to it (session-less, holding a session, or waiting for one) is
// detached with amqp:not-found, as Service Bus detaches the links of an
// entity that is deleted, and nothing is delivered or settled any more.
func (st *store) deleteLocked() {
	st.deleted = true
	err := notFound(st.srv, st.name)
	for _, l := range st.links {
		l.s.c.detachLink(l, err)
	}
	for _, ms := range st.sessions {
		if l := ms.lockedBy; l != nil {
			l.s.c.detachLink(l, err)
		}
	}
	for _, w := range st.waiters {
		w.timer.Stop()
		w.l.refuse(err)
	}
	st.waiters = nil
}

// delete deletes the store and its dead-letter queue.
func (st *store) delete() {
	for _, x := range []*store{st, st.dlq} {
		if x == nil {
			continue
		}
		x.mu.Lock()
		x.deleteLocked()
		x.mu.Unlock()
	}
}

func newToken() uuid {
	var u uuid
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80
	return u
}

// tagFor is the delivery tag Service Bus sends: the lock token in .NET GUID
// byte order.
func tagFor(t uuid) []byte {
	b := t
	b[0], b[3] = b[3], b[0]
	b[1], b[2] = b[2], b[1]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b[:]
}

// encodeDelivery renders m as the client receives it: the delivery count in
// the header, the broker's annotations, and the lock token.
func encodeDelivery(m *message, locked bool) ([]byte, error) {
	am := *m.raw
	var h amqp.MessageHeader
	if m.raw.Header != nil {
		h = *m.raw.Header
	}
	h.DeliveryCount = m.failed
	am.Header = &h
	ann := make(amqp.Annotations, len(m.raw.Annotations)+4)
	maps.Copy(ann, m.raw.Annotations)
	ann[annSequence] = m.seq
	ann[annEnqueuedTime] = m.enqueued
	if m.state == stateDeferred {
		ann[annMessageState] = int64(1)
	}
	am.DeliveryAnnotations = nil
	if locked {
		ann[annLockedUntil] = m.until
		am.DeliveryAnnotations = amqp.Annotations{annLockToken: amqp.UUID(m.token)}
	}
	am.Annotations = ann
	return am.MarshalBinary()
}

// outcome is how a consumer settled a locked message.
type outcome struct {
	kind        outcomeKind
	reason      string
	description string
	props       map[string]any // merged into the application properties
}

type outcomeKind uint8

const (
	outComplete outcomeKind = iota
	outAbandon
	outRelease
	outDefer
	outDeadLetter
)

var errLockLost = &amqpError{Condition: "com.microsoft:message-lock-lost",
	Description: "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue."}

// settle applies a consumer's outcome to the message locked under token.
func (st *store) settle(token uuid, o outcome) *amqpError {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return notFound(st.srv, st.name)
	}
	m := st.locked[token]
	if m == nil || m.state != stateLocked {
		return errLockLost
	}
	if m.ms != nil && (m.ms.lockedBy == nil || time.Now().After(m.ms.until)) {
		return errLockLost
	}
	st.settleLocked(m, o)
	st.dispatchLocked()
	return nil
}

func (st *store) settleLocked(m *message, o outcome) {
	delete(st.locked, m.token)
	if len(o.props) > 0 {
		m.raw = withProperties(m.raw, o.props)
	}
	switch o.kind {
	case outComplete:
		m.state = stateAvailable
		st.removeLocked(m)
	case outRelease:
		st.makeAvailableLocked(m)
	case outAbandon:
		st.failLocked(m)
	case outDefer:
		m.state = stateDeferred
		m.token = uuid{}
		st.deferred[m.seq] = m
	case outDeadLetter:
		m.state = stateAvailable
		st.deadLetterLocked(m, o.reason, o.description)
	}
}

// failLocked counts a failed delivery: the message is available again, or
// dead-lettered once it reached MaxDeliveryCount.
func (st *store) failLocked(m *message) {
	m.failed++
	if st.dlq != nil && int(m.failed) >= st.opts.MaxDeliveryCount {
		m.state = stateAvailable
		st.deadLetterLocked(m, "MaxDeliveryCountExceeded",
			"Message could not be consumed after "+strconv.Itoa(st.opts.MaxDeliveryCount)+" delivery attempts.")
		return
	}
	st.makeAvailableLocked(m)
}

// deadLetterLocked moves m to the dead-letter queue with the reason and
// description as the DeadLetterReason / DeadLetterErrorDescription
// application properties.
func (st *store) deadLetterLocked(m *message, reason, description string) {
	st.removeLocked(m)
	if st.dlq == nil { // dead letters of a dead-letter queue stay there
		return
	}
	raw := withProperties(m.raw, map[string]any{"DeadLetterReason": reason, "DeadLetterErrorDescription": description})
	d := st.dlq
	d.mu.Lock()
	d.seq++
	dm := d.addLocked(d.seq, raw, time.Now())
	dm.failed = m.failed
	d.dispatchLocked()
	d.mu.Unlock()
}

// withProperties returns a copy of m with props merged into its
// application properties.
func withProperties(m *amqp.Message, props map[string]any) *amqp.Message {
	c := *m
	c.ApplicationProperties = make(map[string]any, len(m.ApplicationProperties)+len(props))
	maps.Copy(c.ApplicationProperties, m.ApplicationProperties)
	maps.Copy(c.ApplicationProperties, props)
	return &c
}

// expire returns messages whose lock ran out and releases expired sessions.
func (st *store) expire(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	changed := false
	for st.lockq.Len() > 0 && !st.lockq[0].until.After(now) {
		e := heap.Pop(&st.lockq).(lockEntry)
		m := st.locked[e.token]
		if m == nil || !m.until.Equal(e.until) {
			continue // settled, or renewed (a newer entry exists)
		}
		delete(st.locked, m.token)
		st.failLocked(m)
		changed = true
	}
	for _, ms := range st.sessions {
		if l := ms.lockedBy; l != nil && now.After(ms.until) {
			st.releaseSessionLocked(ms)
			l.s.c.detachLink(l, &amqpError{Condition: "com.microsoft:session-lock-lost",
				Description: "The session lock has expired on the MessageSession."})
			changed = true
		}
	}
	if changed {
		st.dispatchLocked()
	}
}

// renew extends the locks of tokens; a token not locked is lost.
func (st *store) renew(tokens []amqp.UUID) ([]time.Time, *amqpError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]time.Time, 0, len(tokens))
	now := time.Now()
	for _, t := range tokens {
		m := st.locked[uuid(t)]
		if m == nil {
			return nil, errLockLost
		}
		if m.ms != nil {
			out = append(out, m.ms.until)
			continue
		}
		m.until = now.Add(st.opts.LockDuration)
		heap.Push(&st.lockq, lockEntry{until: m.until, token: m.token})
		out = append(out, m.until)
	}
	return out, nil
}

// seqHeap orders messages by sequence number.
type seqHeap []*message

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(*message)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

type lockEntry struct {
	until time.Time
	token uuid
}

type lockHeap []lockEntry

func (h lockHeap) Len() int           { return len(h) }
func (h lockHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h lockHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lockHeap) Push(x any)        { *h = append(*h, x.(lockEntry)) }
func (h *lockHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
