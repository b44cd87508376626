package sbtest

import (
	"container/heap"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"
)

// rpcResult is the answer to a $cbs or $management request.
type rpcResult struct {
	code  int32
	desc  string
	value any
}

func ok(v any) rpcResult { return rpcResult{code: 200, desc: "OK", value: v} }

func failed(code int32, format string, args ...any) rpcResult {
	return rpcResult{code: code, desc: fmt.Sprintf(format, args...)}
}

// handleRequest answers a request on the reply link the request names, with
// its message-id as the correlation-id.
func (c *conn) handleRequest(l *link, payload []byte) {
	var req amqp.Message
	if err := req.UnmarshalBinary(payload); err != nil || req.Properties == nil || req.Properties.ReplyTo == nil {
		return // nothing to answer to
	}
	var r rpcResult
	if l.cbs {
		r = c.srv.putToken(&req)
	} else {
		op, _ := req.ApplicationProperties["operation"].(string)
		r = c.srv.manage(l.mgmtPath, op, &req)
	}
	resp := &amqp.Message{
		Properties:            &amqp.MessageProperties{CorrelationID: req.Properties.MessageID},
		ApplicationProperties: map[string]any{"status-code": r.code, "status-description": r.desc},
		Value:                 r.value,
	}
	b, err := resp.MarshalBinary()
	if err != nil {
		return
	}
	if rl := c.replies[*req.Properties.ReplyTo]; rl != nil {
		rl.s.sendTransfer(rl, nil, b, 0, true, nil)
	}
}

// putToken checks a $cbs claim: a SAS token must be signed with the
// namespace key and unexpired; a JWT is accepted as is.
func (s *Server) putToken(req *amqp.Message) rpcResult {
	if op, _ := req.ApplicationProperties["operation"].(string); op != "put-token" {
		return failed(400, "unknown $cbs operation %q", op)
	}
	typ, _ := req.ApplicationProperties["type"].(string)
	token, _ := req.Value.(string)
	switch typ {
	case "jwt":
		return ok(nil)
	case "servicebus.windows.net:sastoken":
		if err := s.verifySAS(token, time.Now()); err != nil {
			return failed(401, "InvalidSignature: %v", err)
		}
		return ok(nil)
	}
	return failed(400, "unsupported token type %q", typ)
}

func (s *Server) verifySAS(token string, now time.Time) error {
	rest, found := strings.CutPrefix(token, "SharedAccessSignature ")
	if !found {
		return fmt.Errorf("not a shared access signature")
	}
	parts := map[string]string{}
	for _, kv := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(kv, "=")
		parts[k] = v
	}
	if parts["skn"] != s.opts.SharedAccessKeyName {
		return fmt.Errorf("unknown key name %q", parts["skn"])
	}
	exp, err := strconv.ParseInt(parts["se"], 10, 64)
	if err != nil || time.Unix(exp, 0).Before(now) {
		return fmt.Errorf("token expired or without expiry")
	}
	sig, err := url.QueryUnescape(parts["sig"])
	if err != nil {
		return fmt.Errorf("malformed signature")
	}
	h := hmac.New(sha256.New, []byte(s.opts.SharedAccessKey))
	h.Write([]byte(parts["sr"] + "\n" + parts["se"]))
	if !hmac.Equal([]byte(base64.StdEncoding.EncodeToString(h.Sum(nil))), []byte(sig)) {
		return fmt.Errorf("the signature does not match the key")
	}
	return nil
}

// manage runs a $management operation on the entity at path.
func (s *Server) manage(path, op string, req *amqp.Message) rpcResult {
	body, _ := req.Value.(map[string]any)
	switch op {
	case "com.microsoft:schedule-message", "com.microsoft:cancel-scheduled-message":
		t, err := s.resolveTarget(path)
		if err != nil {
			return failed(404, "%v", err)
		}
		if op == "com.microsoft:cancel-scheduled-message" {
			seqs, _ := body["sequence-numbers"].([]int64)
			t.cancel(seqs)
			return ok(nil)
		}
		return scheduleMessages(t, body)
	}
	st, _, err := s.resolveStore(path)
	if err != nil {
		return failed(404, "%v", err)
	}
	switch op {
	case "com.microsoft:renew-lock":
		tokens, _ := body["lock-tokens"].([]amqp.UUID)
		until, e := st.renew(tokens)
		if e != nil {
			return failed(410, "%s", e.Description)
		}
		return ok(map[string]any{"expirations": until})
	case "com.microsoft:update-disposition":
		return st.updateDisposition(body)
	case "com.microsoft:peek-message":
		from, _ := body["from-sequence-number"].(int64)
		n, _ := body["message-count"].(int32)
		return messagesResult(st.peek(from, int(n)))
	case "com.microsoft:receive-by-sequence-number":
		seqs, _ := body["sequence-numbers"].([]int64)
		return messagesResult(st.receiveDeferred(seqs))
	case "com.microsoft:renew-session-lock", "com.microsoft:get-session-state", "com.microsoft:set-session-state":
		id, _ := body["session-id"].(string)
		return st.sessionOp(op, id, body)
	case "com.microsoft:get-message-sessions":
		skip, _ := body["skip"].(int32)
		top, _ := body["top"].(int32)
		ids := st.sessionIDs(int(skip), int(top))
		if len(ids) == 0 {
			return rpcResult{code: 204, desc: "No sessions"}
		}
		return ok(map[string]any{"sessions-ids": ids, "skip": skip + int32(len(ids))})
	}
	return failed(501, "operation %q is not implemented by sbtest", op)
}

func scheduleMessages(t sendTarget, body map[string]any) rpcResult {
	entries, _ := body["messages"].([]any)
	msgs := make([]*amqp.Message, 0, len(entries))
	for i, e := range entries {
		m, _ := e.(map[string]any)
		b, _ := m["message"].([]byte)
		am := new(amqp.Message)
		if err := am.UnmarshalBinary(b); err != nil {
			return failed(400, "messages[%d]: %v", i, err)
		}
		msgs = append(msgs, am)
	}
	seqs, e := t.schedule(msgs, time.Now())
	if e != nil {
		return failed(400, "%s", e.Description)
	}
	return ok(map[string]any{"sequence-numbers": seqs})
}

// messagesResult encodes messages as peek and receive-by-sequence-number
// answer: a list of maps holding each encoded message (and lock token).
func messagesResult(ms []*message, locked bool) rpcResult {
	if len(ms) == 0 {
		return rpcResult{code: 204, desc: "No messages"}
	}
	list := make([]any, 0, len(ms))
	for _, m := range ms {
		b, err := encodeDelivery(m, locked)
		if err != nil {
			continue
		}
		entry := map[string]any{"message": b}
		if locked {
			entry["lock-token"] = amqp.UUID(m.token)
		}
		list = append(list, entry)
	}
	return ok(map[string]any{"messages": list})
}

// peek returns up to n messages from sequence number from, in order.
func (st *store) peek(from int64, n int) ([]*message, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	seqs := make([]int64, 0, len(st.all))
	for seq := range st.all {
		if seq >= from {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	if n > 0 && len(seqs) > n {
		seqs = seqs[:n]
	}
	out := make([]*message, len(seqs))
	for i, seq := range seqs {
		c := *st.all[seq]
		out[i] = &c
	}
	return out, false
}

// receiveDeferred locks deferred messages by sequence number.
func (st *store) receiveDeferred(seqs []int64) ([]*message, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*message
	for _, seq := range seqs {
		m := st.deferred[seq]
		if m == nil {
			continue
		}
		delete(st.deferred, seq)
		m.state = stateLocked
		m.token = newToken()
		m.until = time.Now().Add(st.opts.LockDuration)
		st.locked[m.token] = m
		heap.Push(&st.lockq, lockEntry{until: m.until, token: m.token})
		c := *m
		c.state = stateDeferred
		out = append(out, &c)
	}
	return out, true
}

// updateDisposition settles messages by lock token (the path clients use
// for deferred messages and after their receive link closed).
func (st *store) updateDisposition(body map[string]any) rpcResult {
	status, _ := body["disposition-status"].(string)
	tokens, _ := body["lock-tokens"].([]amqp.UUID)
	o := outcome{}
	switch status {
	case "completed":
		o.kind = outComplete
	case "abandoned":
		o.kind = outAbandon
	case "suspended":
		o.kind = outDeadLetter
		o.reason, _ = body["deadletter-reason"].(string)
		o.description, _ = body["deadletter-description"].(string)
	case "defered":
		o.kind = outDefer
	default:
		return failed(400, "unknown disposition-status %q", status)
	}
	o.props, _ = body["properties-to-modify"].(map[string]any)
	for _, t := range tokens {
		if e := st.settle(uuid(t), o); e != nil {
			return failed(410, "%s", e.Description)
		}
	}
	return ok(nil)
}

// sessionOp renews a session's lock or reads or writes its state.
func (st *store) sessionOp(op, id string, body map[string]any) rpcResult {
	st.mu.Lock()
	defer st.mu.Unlock()
	ms := st.sessions[id]
	if ms == nil || ms.lockedBy == nil {
		return failed(410, "SessionLockLost: the session lock of %q has expired or the session is not accepted", id)
	}
	switch op {
	case "com.microsoft:renew-session-lock":
		ms.until = time.Now().Add(st.opts.LockDuration)
		for _, m := range st.locked {
			if m.ms == ms {
				m.until = ms.until
			}
		}
		return ok(map[string]any{"expiration": ms.until})
	case "com.microsoft:get-session-state":
		if ms.state == nil {
			return ok(map[string]any{"session-state": nil})
		}
		return ok(map[string]any{"session-state": ms.state})
	}
	ms.state, _ = body["session-state"].([]byte)
	ms.updated = time.Now()
	return ok(nil)
}

// sessionIDs lists sessions that hold messages.
func (st *store) sessionIDs(skip, top int) []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var ids []string
	for id, ms := range st.sessions {
		if ms.count > 0 || ms.state != nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if skip >= len(ids) {
		return nil
	}
	ids = ids[skip:]
	if top > 0 && len(ids) > top {
		ids = ids[:top]
	}
	return ids
}
