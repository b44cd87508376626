package sbtest

import (
	"fmt"
	"sync"
)

// session is one AMQP session of a connection.
type session struct {
	c       *conn
	channel uint16

	mu             sync.Mutex // guards the counters and unsettled below
	nextOutgoingID uint32
	nextDeliveryID uint32
	nextIncomingID uint32
	sinceFlow      uint32
	unsettled      map[uint32]*outDelivery

	// The reader goroutine alone touches these.
	links      map[uint32]*link // by the client's handle
	nextHandle uint32
}

// outDelivery is a peek-lock delivery awaiting the client's settlement.
type outDelivery struct {
	st    *store
	token uuid
}

// sendTransfer sends one message on l, split into frames that fit the
// client's max-frame-size. od, when not nil, is remembered until settled.
func (s *session) sendTransfer(l *link, tag []byte, payload []byte, format uint32, settled bool, od *outDelivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextDeliveryID
	s.nextDeliveryID++
	if tag == nil {
		tag = []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	}
	if od != nil {
		s.unsettled[id] = od
	}
	t := transfer{handle: l.handle, deliveryID: &id, deliveryTag: tag, messageFormat: &format, settled: settled, more: true}
	var e encoder
	e.value(t.encode())
	room := int(s.c.peerMaxFrame) - 8 - len(e.b)
	if room < 64 {
		room = 64
	}
	s.c.wmu.Lock()
	for first := true; first || len(payload) > 0; first = false {
		chunk := payload
		t.more = len(chunk) > room
		if t.more {
			chunk = chunk[:room]
		}
		payload = payload[len(chunk):]
		if !s.c.wclosed {
			s.c.wbuf = appendFrame(s.c.wbuf, frameAMQP, s.channel, t.encode(), chunk)
		}
		s.nextOutgoingID++
	}
	s.c.wmu.Unlock()
	s.c.signal()
}

// flowFor returns a flow frame carrying the session's state and, when l is
// not nil, the link's.
func (s *session) flowFor(l *link, deliveryCount, credit uint32, drain bool) flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.nextIncomingID
	f := flow{nextIncomingID: &next, incomingWindow: sessionWindow, nextOutgoingID: s.nextOutgoingID, outgoingWindow: sessionWindow}
	if l != nil {
		f.handle = ptr(l.handle)
		f.deliveryCount = &deliveryCount
		f.linkCredit = &credit
		f.drain = drain
	}
	return f
}

func (s *session) sendFlow(l *link, deliveryCount, credit uint32, drain bool) {
	s.c.writeFrame(s.channel, s.flowFor(l, deliveryCount, credit, drain).encode(), nil)
}

// handle dispatches a link-level frame of this session.
func (s *session) handle(f frame) *amqpError {
	fields := f.body.fields()
	switch f.body.code() {
	case descAttach:
		a, err := decodeAttach(fields)
		if err != nil {
			return &amqpError{Condition: "amqp:decode-error", Description: err.Error()}
		}
		s.attach(a)
	case descFlow:
		s.flow(decodeFlow(fields))
	case descTransfer:
		t, err := decodeTransfer(fields)
		if err != nil {
			return &amqpError{Condition: "amqp:decode-error", Description: err.Error()}
		}
		return s.transfer(t, f.payload)
	case descDisposition:
		d, err := decodeDisposition(fields)
		if err != nil {
			return &amqpError{Condition: "amqp:decode-error", Description: err.Error()}
		}
		s.disposition(d)
	case descDetach:
		h, _ := fieldUint32(fields, 0)
		if l := s.links[h]; l != nil {
			delete(s.links, h)
			ours := l.detachedByUs()
			s.c.cleanupLink(l)
			if !ours {
				s.c.writeFrame(s.channel, detachFrame(l.handle, true, nil), nil)
			}
		}
	}
	return nil
}

// transfer takes one transfer frame from a client sender.
func (s *session) transfer(t transfer, payload []byte) *amqpError {
	s.mu.Lock()
	s.nextIncomingID++
	s.sinceFlow++
	needFlow := s.sinceFlow >= sessionWindow/2
	if needFlow {
		s.sinceFlow = 0
	}
	s.mu.Unlock()
	if needFlow {
		s.sendFlow(nil, 0, 0, false)
	}
	l := s.links[t.handle]
	if l == nil || !l.clientSends {
		return &amqpError{Condition: "amqp:session:unattached-handle", Description: fmt.Sprintf("transfer on unknown handle %d", t.handle)}
	}
	return l.receiveFrame(t, payload)
}

// disposition applies the client's settlement of broker deliveries.
func (s *session) disposition(d disposition) {
	if !d.role { // from a sender: the broker settles client transfers at once
		return
	}
	last := d.first
	if d.last != nil && *d.last >= d.first && *d.last-d.first < 1<<16 {
		last = *d.last
	}
	o, ok := outcomeOf(d.state)
	for id := d.first; ; id++ {
		s.mu.Lock()
		od := s.unsettled[id]
		delete(s.unsettled, id)
		s.mu.Unlock()
		if od != nil && ok {
			state := d.state
			if o.kind == outDeadLetter {
				state = described{uint64(descRejected), []any{}} // Service Bus confirms without the error
			}
			if err := od.st.settle(od.token, o); err != nil {
				state = stateRejected(err)
			}
			if !d.settled {
				s.c.writeFrame(s.channel, disposition{role: false, first: id, settled: true, state: state}.encode(), nil)
			}
		}
		if id == last {
			break
		}
	}
}

// outcomeOf maps a delivery state to a Service Bus settlement.
func outcomeOf(state any) (outcome, bool) {
	st, ok := state.(described)
	if !ok {
		return outcome{}, false
	}
	f := st.fields()
	switch st.code() {
	case descAccepted:
		return outcome{kind: outComplete}, true
	case descReleased:
		return outcome{kind: outRelease}, true
	case descModified:
		o := outcome{kind: outAbandon, props: plainMap(fieldMap(f, 2))}
		if fieldBool(f, 1) && !fieldBool(f, 0) {
			o.kind = outDefer
		}
		return o, true
	case descRejected:
		o := outcome{kind: outDeadLetter}
		if e := decodeError(field(f, 0)); e != nil {
			props := plainMap(e.Info)
			o.reason, _ = props["DeadLetterReason"].(string)
			o.description, _ = props["DeadLetterErrorDescription"].(string)
			delete(props, "DeadLetterReason")
			delete(props, "DeadLetterErrorDescription")
			o.props = props
			if e.Condition != "com.microsoft:dead-letter" && o.reason == "" {
				o.reason, o.description = string(e.Condition), e.Description
			}
		}
		return o, true
	}
	return outcome{}, false
}
