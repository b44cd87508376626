package sbtest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"
)

type linkKind uint8

const (
	kindEntitySend linkKind = iota // the client sends to a queue or topic
	kindRequest                    // the client sends $cbs / $management requests
	kindReceive                    // the broker sends a queue's or subscription's messages
	kindReply                      // the broker sends RPC replies
)

const (
	batchFormat        = 0x80013700
	sessionFilterName  = "com.microsoft:session-filter"
	maxRequestBytes    = 16 << 20
	defaultAcceptAfter = 60 * time.Second
)

// link is one attached link, named from the broker's side by kind.
type link struct {
	s            *session
	req          attach // the client's attach
	handle       uint32 // ours
	remoteHandle uint32
	kind         linkKind
	clientSends  bool

	// requests and sends (reader goroutine only)
	cbs       bool
	mgmtPath  string
	target    sendTarget
	replyAddr string
	in        []byte
	inID      uint32
	inFormat  uint32
	inSettled bool
	inMore    bool
	inTooBig  bool
	received  uint32
	limit     uint32 // delivery count at which the granted credit runs out

	// receive links: guarded by st.mu
	st               *store
	credit           uint32
	deliveryCount    uint32
	receiveAndDelete bool
	msess            *msgSession
	detached         bool

	weDetached atomic.Bool // the broker sent detach first
}

func (l *link) detachedByUs() bool { return l.weDetached.Load() }

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// attach handles a client's attach.
func (s *session) attach(a attach) {
	l := &link{s: s, req: a, handle: s.nextHandle, remoteHandle: a.handle}
	s.nextHandle++
	s.links[a.handle] = l
	if !a.role {
		s.attachClientSender(l)
		return
	}
	addr := terminusAddress(a.source)
	if addr == "$cbs" || hasSuffixFold(addr, "/$management") {
		l.kind = kindReply
		l.replyAddr = terminusAddress(a.target)
		s.c.replies[l.replyAddr] = l
		s.c.writeFrame(s.channel, l.response(a.source, nil), nil)
		return
	}
	st, _, err := s.c.srv.resolveStore(addr)
	if err != nil {
		l.refuse(notFound(s.c.srv, addr))
		return
	}
	l.kind = kindReceive
	l.st = st
	l.receiveAndDelete = a.sndSettleMode != nil && *a.sndSettleMode == 1
	filter, hasFilter := sessionFilter(a.source)
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.deleted: // deleted after it was resolved
		l.refuse(notFound(s.c.srv, addr))
	case hasFilter && !st.opts.RequiresSession:
		l.refuse(&amqpError{Condition: "amqp:not-allowed", Description: fmt.Sprintf(
			"It is not possible for an entity that does not require sessions (%s) to create a session receiver.", st.name)})
	case !hasFilter && st.opts.RequiresSession:
		l.refuse(&amqpError{Condition: "amqp:not-allowed", Description: fmt.Sprintf(
			"It is not possible for an entity that requires sessions (%s) to create a non-sessionful message receiver.", st.name)})
	case hasFilter:
		s.attachSession(l, st, filter)
	default:
		st.links = append(st.links, l)
		s.c.writeFrame(s.channel, l.response(a.source, nil), nil)
	}
}

func (s *session) attachClientSender(l *link) {
	a := l.req
	l.clientSends = true
	addr := terminusAddress(a.target)
	switch {
	case addr == "$cbs":
		l.kind, l.cbs = kindRequest, true
	case hasSuffixFold(addr, "/$management"):
		l.kind, l.mgmtPath = kindRequest, addr[:len(addr)-len("/$management")]
	default:
		t, err := s.c.srv.resolveTarget(addr)
		if err != nil {
			l.refuse(notFound(s.c.srv, addr))
			return
		}
		l.kind, l.target = kindEntitySend, t
	}
	s.c.writeFrame(s.channel, l.response(a.source, nil), nil)
	l.limit = a.initialDeliveryCount + senderCredit
	s.sendFlow(l, a.initialDeliveryCount, senderCredit, false)
}

// attachSession binds a receive link to a message session (st.mu held).
func (s *session) attachSession(l *link, st *store, filter described) {
	if id, named := filter.value.(string); named {
		ms := st.sessions[id]
		if ms == nil {
			ms = &msgSession{id: id, updated: time.Now()}
			st.sessions[id] = ms
		}
		if ms.lockedBy != nil {
			l.refuse(&amqpError{Condition: "com.microsoft:session-cannot-be-locked", Description: fmt.Sprintf(
				"The requested session '%s' cannot be accepted. It may be locked by another receiver.", id)})
			return
		}
		st.lockSessionLocked(ms, l)
		s.c.completeSessionAttach(l, ms)
		return
	}
	if ms := st.freeSessionLocked(); ms != nil {
		st.lockSessionLocked(ms, l)
		s.c.completeSessionAttach(l, ms)
		return
	}
	wait := defaultAcceptAfter
	if v, ok := l.req.properties.get("com.microsoft:timeout"); ok {
		if ms, ok := fieldUint32([]any{v}, 0); ok {
			// Answer a little early so the reply beats the client's own
			// deadline, from which the SDK derives this timeout.
			wait = time.Duration(ms) * time.Millisecond * 9 / 10
		}
	}
	w := &acceptWait{l: l}
	w.timer = time.AfterFunc(wait, func() {
		st.mu.Lock()
		found := false
		for i, x := range st.waiters {
			if x == w {
				st.waiters = append(st.waiters[:i:i], st.waiters[i+1:]...)
				found = true
				break
			}
		}
		if found {
			l.refuse(&amqpError{Condition: "com.microsoft:timeout", Description: "No session available to accept within the timeout."})
		}
		st.mu.Unlock()
	})
	st.waiters = append(st.waiters, w)
}

// completeSessionAttach answers a session receiver's attach with the
// session it was granted (st.mu held).
func (c *conn) completeSessionAttach(l *link, ms *msgSession) {
	src := *l.req.source
	fields := append([]any(nil), src.fields()...)
	for len(fields) < 8 {
		fields = append(fields, nil)
	}
	desc := any(uint64(0x137000000C))
	if f, ok := sessionFilter(l.req.source); ok {
		desc = f.descriptor
	}
	fields[7] = mapValue{{symbol(sessionFilterName), described{desc, ms.id}}}
	src.value = fields
	const epochTicks = 621355968000000000
	props := mapValue{{symbol("com.microsoft:locked-until-utc"), ms.until.UnixMilli()*10000 + epochTicks}}
	c.writeFrame(l.s.channel, l.response(&src, props), nil)
}

// sessionFilter returns the session filter of a source, if any.
func sessionFilter(src *described) (described, bool) {
	if src == nil {
		return described{}, false
	}
	v, ok := fieldMap(src.fields(), 7).get(sessionFilterName)
	if !ok {
		return described{}, false
	}
	d, ok := v.(described)
	return d, ok
}

// response is the broker's attach for l.
func (l *link) response(source *described, props mapValue) any {
	a := l.req
	r := attach{name: a.name, handle: l.handle, role: !a.role, sndSettleMode: a.sndSettleMode, rcvSettleMode: a.rcvSettleMode,
		source: source, target: a.target, properties: props}
	if l.clientSends {
		r.maxMessageSize = uint64(l.s.c.srv.opts.MaxMessageSize)
		if l.kind == kindRequest {
			r.maxMessageSize = maxRequestBytes
		}
	}
	return r.encode()
}

// refuse answers an attach with no terminus and detaches with err, which
// is how an AMQP peer reports a failed attach.
func (l *link) refuse(err *amqpError) {
	l.weDetached.Store(true)
	l.detached = true
	r := attach{name: l.req.name, handle: l.handle, role: !l.req.role, sndSettleMode: l.req.sndSettleMode, rcvSettleMode: l.req.rcvSettleMode}
	if l.req.role {
		r.target = l.req.target
	} else {
		r.source = l.req.source
	}
	l.s.c.writeFrame(l.s.channel, r.encode(), nil)
	l.s.c.writeFrame(l.s.channel, detachFrame(l.handle, true, err), nil)
}

func notFound(s *Server, addr string) *amqpError {
	return &amqpError{Condition: "amqp:not-found", Description: fmt.Sprintf(
		"The messaging entity 'sb://%s/%s' could not be found.", s.Addr(), addr)}
}

// detachLink detaches a receive link from the broker's side (st.mu held).
func (c *conn) detachLink(l *link, err *amqpError) {
	if l.weDetached.Swap(true) {
		return
	}
	l.detached = true
	l.credit = 0
	c.writeFrame(l.s.channel, detachFrame(l.handle, true, err), nil)
}

// cleanupLink forgets a link whose session, connection or attachment ended.
func (c *conn) cleanupLink(l *link) {
	switch l.kind {
	case kindReply:
		if c.replies[l.replyAddr] == l {
			delete(c.replies, l.replyAddr)
		}
	case kindReceive:
		st := l.st
		st.mu.Lock()
		defer st.mu.Unlock()
		l.detached = true
		l.credit = 0
		for i, x := range st.links {
			if x == l {
				st.links = append(st.links[:i:i], st.links[i+1:]...)
				break
			}
		}
		for i, w := range st.waiters {
			if w.l == l {
				w.timer.Stop()
				st.waiters = append(st.waiters[:i:i], st.waiters[i+1:]...)
				break
			}
		}
		if ms := l.msess; ms != nil && ms.lockedBy == l {
			st.releaseSessionLocked(ms)
			st.dropIdleSessionLocked(ms)
			st.dispatchLocked()
		}
	}
}

// flow handles a client's flow frame.
func (s *session) flow(fl flow) {
	if fl.handle == nil {
		if fl.echo {
			s.sendFlow(nil, 0, 0, false)
		}
		return
	}
	l := s.links[*fl.handle]
	if l == nil {
		return
	}
	switch l.kind {
	case kindReceive:
		st := l.st
		st.mu.Lock()
		defer st.mu.Unlock()
		if l.detached {
			return
		}
		dc := l.deliveryCount
		if fl.deliveryCount != nil {
			dc = *fl.deliveryCount
		}
		if fl.linkCredit != nil {
			c := int64(dc) + int64(*fl.linkCredit) - int64(l.deliveryCount)
			l.credit = uint32(max(c, 0))
		}
		if l.msess != nil {
			st.dispatchSessionLocked(l.msess)
		} else {
			st.dispatchLocked()
		}
		if fl.drain && l.credit > 0 {
			l.deliveryCount += l.credit
			l.credit = 0
			s.sendFlow(l, l.deliveryCount, 0, true)
		} else if fl.echo {
			s.sendFlow(l, l.deliveryCount, l.credit, false)
		}
	case kindEntitySend, kindRequest:
		if fl.echo {
			dc := l.req.initialDeliveryCount + l.received
			s.sendFlow(l, dc, l.limit-dc, false)
		}
	}
}

// receiveFrame assembles a client's transfer and handles the message.
func (l *link) receiveFrame(t transfer, payload []byte) *amqpError {
	if !l.inMore {
		l.inID, l.inFormat, l.inSettled, l.inTooBig = 0, 0, t.settled, false
		if t.deliveryID != nil {
			l.inID = *t.deliveryID
		}
		if t.messageFormat != nil {
			l.inFormat = *t.messageFormat
		}
		l.in = nil
	} else {
		l.inSettled = l.inSettled || t.settled
	}
	if t.aborted {
		l.inMore, l.in = false, nil
		return nil
	}
	limit := l.s.c.srv.opts.MaxMessageSize
	if l.kind == kindRequest {
		limit = maxRequestBytes
	}
	switch {
	case l.inTooBig:
	case len(l.in)+len(payload) > limit:
		l.inTooBig, l.in = true, nil
	case l.in == nil && !t.more:
		l.in = payload // a frame's payload is never reused: no copy needed
	default:
		l.in = append(l.in, payload...)
	}
	l.inMore = t.more
	if t.more {
		return nil
	}
	l.received++
	state := l.handleMessage()
	l.in = nil
	if !l.inSettled {
		l.s.c.writeFrame(l.s.channel, disposition{role: true, first: l.inID, settled: true, state: state}.encode(), nil)
	}
	dc := l.req.initialDeliveryCount + l.received
	if l.limit-dc < senderCredit/2 {
		l.limit = dc + senderCredit
		l.s.sendFlow(l, dc, senderCredit, false)
	}
	return nil
}

// handleMessage processes one complete message and returns its outcome.
func (l *link) handleMessage() any {
	srv := l.s.c.srv
	if l.inTooBig {
		return stateRejected(&amqpError{Condition: "amqp:link:message-size-exceeded", Description: fmt.Sprintf(
			"The received message (delivery-id:%d) exceeds the limit (%d bytes) currently allowed on the link.", l.inID, srv.opts.MaxMessageSize)})
	}
	if l.kind == kindRequest {
		l.s.c.handleRequest(l, l.in)
		return stateAccepted
	}
	msgs, err := decodeSent(l.in, l.inFormat)
	if err != nil {
		return stateRejected(&amqpError{Condition: "amqp:decode-error", Description: err.Error()})
	}
	if e := l.target.send(msgs, time.Now()); e != nil {
		return stateRejected(e)
	}
	return stateAccepted
}

// decodeSent decodes a sent message, or each message of a batch.
func decodeSent(b []byte, format uint32) ([]*amqp.Message, error) {
	var env amqp.Message
	if err := env.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	if format != batchFormat {
		return []*amqp.Message{&env}, nil
	}
	out := make([]*amqp.Message, 0, len(env.Data))
	for i, d := range env.Data {
		m := new(amqp.Message)
		if err := m.UnmarshalBinary(d); err != nil {
			return nil, fmt.Errorf("decode message %d of batch: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}
