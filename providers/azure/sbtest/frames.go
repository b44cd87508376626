package sbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames and performatives (AMQP 1.0 part 2, "Transport", and part 5 for
// SASL): what travels between the broker and a client.

// Frame types.
const (
	frameAMQP = 0x00
	frameSASL = 0x01
)

// Performative and section descriptors.
const (
	descOpen        = 0x10
	descBegin       = 0x11
	descAttach      = 0x12
	descFlow        = 0x13
	descTransfer    = 0x14
	descDisposition = 0x15
	descDetach      = 0x16
	descEnd         = 0x17
	descClose       = 0x18
	descError       = 0x1d
	descReceived    = 0x23
	descAccepted    = 0x24
	descRejected    = 0x25
	descReleased    = 0x26
	descModified    = 0x27
	descSource      = 0x28
	descTarget      = 0x29

	descSASLMechanisms = 0x40
	descSASLInit       = 0x41
	descSASLOutcome    = 0x44
)

// frame is one decoded frame. body is nil for a heartbeat (empty frame).
type frame struct {
	typ     byte
	channel uint16
	body    described
	payload []byte // transfer payload after the performative
	empty   bool
}

// readFrame reads one frame of at most maxSize bytes.
func readFrame(r io.Reader, hdr []byte, maxSize uint32) (frame, error) {
	if _, err := io.ReadFull(r, hdr[:8]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	doff := hdr[4]
	if size < 8 || doff < 2 || uint32(doff)*4 > size {
		return frame{}, fmt.Errorf("sbtest: malformed frame header (size %d, data offset %d)", size, doff)
	}
	if size > maxSize {
		return frame{}, fmt.Errorf("sbtest: frame of %d bytes exceeds max-frame-size %d", size, maxSize)
	}
	rest := make([]byte, size-8)
	if _, err := io.ReadFull(r, rest); err != nil {
		return frame{}, err
	}
	return parseFrame(hdr[5], binary.BigEndian.Uint16(hdr[6:8]), rest[int(doff)*4-8:])
}

// parseFrame decodes a frame body: a described performative, then payload.
func parseFrame(typ byte, channel uint16, body []byte) (frame, error) {
	f := frame{typ: typ, channel: channel}
	if len(body) == 0 {
		f.empty = true
		return f, nil
	}
	d := decoder{b: body}
	v, err := d.value()
	if err != nil {
		return f, fmt.Errorf("sbtest: decode performative: %w", err)
	}
	p, ok := v.(described)
	if !ok {
		return f, fmt.Errorf("sbtest: frame body is %T, not a described performative", v)
	}
	f.body = p
	f.payload = d.b
	return f, nil
}

// appendFrame appends a whole frame holding performative p and payload.
func appendFrame(dst []byte, typ byte, channel uint16, p any, payload []byte) []byte {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	e := encoder{b: dst}
	e.value(p)
	e.b = append(e.b, payload...)
	binary.BigEndian.PutUint32(e.b[at:], uint32(len(e.b)-at))
	return e.b
}

// field returns l[i], or nil past the end of the list.
func field(l []any, i int) any {
	if i < len(l) {
		return l[i]
	}
	return nil
}

func fieldString(l []any, i int) string {
	switch v := field(l, i).(type) {
	case string:
		return v
	case symbol:
		return string(v)
	}
	return ""
}

func fieldUint32(l []any, i int) (uint32, bool) {
	switch v := field(l, i).(type) {
	case uint32:
		return v, true
	case uint8:
		return uint32(v), true
	case uint16:
		return uint32(v), true
	case uint64:
		if v <= 1<<32-1 {
			return uint32(v), true
		}
	}
	return 0, false
}

func fieldBool(l []any, i int) bool {
	b, _ := field(l, i).(bool)
	return b
}

func fieldMap(l []any, i int) mapValue {
	m, _ := field(l, i).(mapValue)
	return m
}

func ptr[T any](v T) *T { return &v }

// amqpError is the error type carried by detach, end, close and rejected.
type amqpError struct {
	Condition   symbol
	Description string
	Info        mapValue
}

func (e *amqpError) Error() string {
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

func (e *amqpError) described() any {
	if e == nil {
		return nil
	}
	l := []any{e.Condition, e.Description}
	if e.Info != nil {
		l = append(l, e.Info)
	}
	return described{uint64(descError), l}
}

func decodeError(v any) *amqpError {
	d, ok := v.(described)
	if !ok || d.code() != descError {
		return nil
	}
	f := d.fields()
	return &amqpError{Condition: symbol(fieldString(f, 0)), Description: fieldString(f, 1), Info: fieldMap(f, 2)}
}

// attach is the attach performative. Source and target are kept as decoded
// so the broker can echo them.
type attach struct {
	name                 string
	handle               uint32
	role                 bool // true: receiver
	sndSettleMode        *uint8
	rcvSettleMode        *uint8
	source               *described
	target               *described
	initialDeliveryCount uint32
	maxMessageSize       uint64
	properties           mapValue
}

func decodeAttach(f []any) (attach, error) {
	a := attach{name: fieldString(f, 0)}
	h, ok := fieldUint32(f, 1)
	if !ok || a.name == "" {
		return a, errors.New("sbtest: attach without name or handle")
	}
	a.handle = h
	a.role = fieldBool(f, 2)
	if v, ok := field(f, 3).(uint8); ok {
		a.sndSettleMode = &v
	}
	if v, ok := field(f, 4).(uint8); ok {
		a.rcvSettleMode = &v
	}
	if v, ok := field(f, 5).(described); ok {
		a.source = &v
	}
	if v, ok := field(f, 6).(described); ok {
		a.target = &v
	}
	a.initialDeliveryCount, _ = fieldUint32(f, 9)
	if v, ok := field(f, 10).(uint64); ok {
		a.maxMessageSize = v
	}
	a.properties = fieldMap(f, 13)
	return a, nil
}

func (a attach) encode() any {
	opt := func(p *uint8) any {
		if p == nil {
			return nil
		}
		return *p
	}
	term := func(t *described) any {
		if t == nil {
			return nil
		}
		return *t
	}
	var props any
	if a.properties != nil {
		props = a.properties
	}
	var idc any
	if !a.role { // sender: initial-delivery-count is mandatory
		idc = a.initialDeliveryCount
	}
	return described{uint64(descAttach), []any{a.name, a.handle, a.role, opt(a.sndSettleMode), opt(a.rcvSettleMode),
		term(a.source), term(a.target), nil, nil, idc, a.maxMessageSize, nil, nil, props}}
}

// terminusAddress returns the address of a source or target.
func terminusAddress(t *described) string {
	if t == nil {
		return ""
	}
	return fieldString(t.fields(), 0)
}

// flow is the flow performative.
type flow struct {
	nextIncomingID *uint32
	incomingWindow uint32
	nextOutgoingID uint32
	outgoingWindow uint32
	handle         *uint32
	deliveryCount  *uint32
	linkCredit     *uint32
	available      *uint32
	drain          bool
	echo           bool
}

func decodeFlow(f []any) flow {
	var fl flow
	if v, ok := fieldUint32(f, 0); ok {
		fl.nextIncomingID = &v
	}
	fl.incomingWindow, _ = fieldUint32(f, 1)
	fl.nextOutgoingID, _ = fieldUint32(f, 2)
	fl.outgoingWindow, _ = fieldUint32(f, 3)
	if v, ok := fieldUint32(f, 4); ok {
		fl.handle = &v
	}
	if v, ok := fieldUint32(f, 5); ok {
		fl.deliveryCount = &v
	}
	if v, ok := fieldUint32(f, 6); ok {
		fl.linkCredit = &v
	}
	if v, ok := fieldUint32(f, 7); ok {
		fl.available = &v
	}
	fl.drain = fieldBool(f, 8)
	fl.echo = fieldBool(f, 9)
	return fl
}

func (fl flow) encode() any {
	u := func(p *uint32) any {
		if p == nil {
			return nil
		}
		return *p
	}
	return described{uint64(descFlow), []any{u(fl.nextIncomingID), fl.incomingWindow, fl.nextOutgoingID, fl.outgoingWindow,
		u(fl.handle), u(fl.deliveryCount), u(fl.linkCredit), u(fl.available), fl.drain, fl.echo}}
}

// transfer is the transfer performative (payload travels after it).
type transfer struct {
	handle        uint32
	deliveryID    *uint32
	deliveryTag   []byte
	messageFormat *uint32
	settled       bool
	more          bool
	aborted       bool
}

func decodeTransfer(f []any) (transfer, error) {
	h, ok := fieldUint32(f, 0)
	if !ok {
		return transfer{}, errors.New("sbtest: transfer without handle")
	}
	t := transfer{handle: h}
	if v, ok := fieldUint32(f, 1); ok {
		t.deliveryID = &v
	}
	t.deliveryTag, _ = field(f, 2).([]byte)
	if v, ok := fieldUint32(f, 3); ok {
		t.messageFormat = &v
	}
	t.settled = fieldBool(f, 4)
	t.more = fieldBool(f, 5)
	t.aborted = fieldBool(f, 9)
	return t, nil
}

func (t transfer) encode() any {
	var id, tag, format any
	if t.deliveryID != nil {
		id = *t.deliveryID
		tag = t.deliveryTag
	}
	if t.messageFormat != nil {
		format = *t.messageFormat
	}
	return described{uint64(descTransfer), []any{t.handle, id, tag, format, t.settled, t.more}}
}

// disposition is the disposition performative.
type disposition struct {
	role    bool // true: sent by the receiver
	first   uint32
	last    *uint32
	settled bool
	state   any // a described delivery state, or nil
}

func decodeDisposition(f []any) (disposition, error) {
	first, ok := fieldUint32(f, 1)
	if !ok {
		return disposition{}, errors.New("sbtest: disposition without first")
	}
	d := disposition{role: fieldBool(f, 0), first: first, settled: fieldBool(f, 3), state: field(f, 4)}
	if v, ok := fieldUint32(f, 2); ok {
		d.last = &v
	}
	return d, nil
}

func (d disposition) encode() any {
	var last any
	if d.last != nil {
		last = *d.last
	}
	return described{uint64(descDisposition), []any{d.role, d.first, last, d.settled, d.state}}
}

var stateAccepted = described{uint64(descAccepted), []any{}}

func stateRejected(e *amqpError) any {
	return described{uint64(descRejected), []any{e.described()}}
}

func detachFrame(handle uint32, closed bool, err *amqpError) any {
	return described{uint64(descDetach), []any{handle, closed, err.described()}}
}

func endFrame(err *amqpError) any   { return described{uint64(descEnd), []any{err.described()}} }
func closeFrame(err *amqpError) any { return described{uint64(descClose), []any{err.described()}} }
