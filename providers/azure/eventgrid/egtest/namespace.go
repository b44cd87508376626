package egtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SubscriptionConfig configures a queue event subscription. The zero value
// is Event Grid's default configuration.
type SubscriptionConfig struct {
	// LockDuration is receiveLockDurationInSeconds (default 60s). Values
	// below Event Grid's 60 s minimum are allowed, for fast tests.
	LockDuration time.Duration
	// MaxDeliveryCount is how often an event is delivered before it is
	// dead-lettered (default 10, Event Grid's maximum).
	MaxDeliveryCount int
	// DeadLetter keeps dead-lettered events readable with DeadLetters, as a
	// dead-letter destination would; without it they are dropped.
	DeadLetter bool
}

// DeadLetter is an event a subscription gave up on.
type DeadLetter struct {
	Event         json.RawMessage
	Reason        string // "Rejected", "MaxDeliveryCountExceeded", or a webhook outcome
	DeliveryCount int
	Time          time.Time
}

type nsTopic struct {
	subs map[string]*nsSub
}

type nsSub struct {
	cfg     SubscriptionConfig
	q       queue
	dead    []DeadLetter
	changed chan struct{} // closed and replaced when events become available
}

// CreateTopic creates a namespace topic. It is an error if it exists.
func (s *Server) CreateTopic(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[name]; ok {
		return fmt.Errorf("egtest: topic %q exists", name)
	}
	s.topics[name] = &nsTopic{subs: map[string]*nsSub{}}
	return nil
}

// CreateSubscription creates a queue event subscription on a namespace
// topic; it receives the events published from now on.
func (s *Server) CreateSubscription(topic, name string, cfg SubscriptionConfig) error {
	if cfg.LockDuration <= 0 {
		cfg.LockDuration = 60 * time.Second
	}
	if cfg.MaxDeliveryCount <= 0 {
		cfg.MaxDeliveryCount = 10
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil {
		return fmt.Errorf("egtest: topic %q does not exist", topic)
	}
	if _, ok := t.subs[name]; ok {
		return fmt.Errorf("egtest: subscription %q of topic %q exists", name, topic)
	}
	t.subs[name] = &nsSub{cfg: cfg, q: queue{locked: map[string]*message{}}, changed: make(chan struct{})}
	return nil
}

// DeleteSubscription deletes a queue event subscription with its events,
// as deleting it through the control plane does: receive requests waiting
// on it, and later receives and settlements, are answered 404 NotFound.
func (s *Server) DeleteSubscription(topic, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil {
		return fmt.Errorf("egtest: topic %q does not exist", topic)
	}
	sub := t.subs[name]
	if sub == nil {
		return fmt.Errorf("egtest: subscription %q of topic %q does not exist", name, topic)
	}
	delete(t.subs, name)
	sub.notify() // waiting receives look again and find it gone
	return nil
}

// DeleteTopic deletes a namespace topic and its event subscriptions (see
// DeleteSubscription); publishing to it is answered 404 from then on.
func (s *Server) DeleteTopic(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[name]
	if t == nil {
		return fmt.Errorf("egtest: topic %q does not exist", name)
	}
	delete(s.topics, name)
	for _, sub := range t.subs {
		sub.notify()
	}
	return nil
}

// DeadLetters returns the events a subscription dead-lettered, oldest first.
func (s *Server) DeadLetters(topic, subscription string) []DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.sub(topic, subscription); sub != nil {
		return append([]DeadLetter(nil), sub.dead...)
	}
	return nil
}

// Backlog returns how many events of a subscription are not yet settled:
// available, delayed or locked.
func (s *Server) Backlog(topic, subscription string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.sub(topic, subscription)
	if sub == nil {
		return 0
	}
	n := sub.q.readyLen() + len(sub.q.locked)
	for _, t := range sub.q.delayed {
		if !t.m.gone {
			n++
		}
	}
	return n
}

func (s *Server) sub(topic, name string) *nsSub {
	if t := s.topics[topic]; t != nil {
		return t.subs[name]
	}
	return nil
}

func (sub *nsSub) notify() {
	close(sub.changed)
	sub.changed = make(chan struct{})
}

// expire handles locks that ran out: redeliver, or dead-letter after the
// last delivery. Call with s.mu held.
func (sub *nsSub) expire(now time.Time, st *Stats) {
	expired := sub.q.due(now)
	st.Expired += len(expired)
	for _, m := range expired {
		sub.redeliver(m, now, 0, "MaxDeliveryCountExceeded")
	}
	if len(expired) > 0 || sub.q.readyLen() > 0 {
		sub.notify()
	}
}

// redeliver makes m available after delay, or dead-letters it when its
// deliveries are used up.
func (sub *nsSub) redeliver(m *message, now time.Time, delay time.Duration, reason string) {
	if m.deliveries >= sub.cfg.MaxDeliveryCount {
		sub.deadLetter(m, now, reason)
		return
	}
	if delay > 0 {
		sub.q.delay(m, now.Add(delay))
		return
	}
	sub.q.push(m)
}

func (sub *nsSub) deadLetter(m *message, now time.Time, reason string) {
	m.gone = true
	if sub.cfg.DeadLetter {
		sub.dead = append(sub.dead, DeadLetter{Event: m.raw, Reason: reason, DeliveryCount: m.deliveries, Time: now})
	}
}

// serveNamespace routes /topics/{topic}:publish and
// /topics/{topic}/eventsubscriptions/{sub}:{op}.
func (s *Server) serveNamespace(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Event Grid data-plane operations are POST")
		return
	}
	if v := r.URL.Query().Get("api-version"); v != NamespaceAPIVersion {
		writeError(w, http.StatusBadRequest, "InvalidApiVersion", fmt.Sprintf("api-version %q is not supported; use %s", v, NamespaceAPIVersion))
		return
	}
	if !s.authorize(w, r, "Authorization") {
		return
	}
	parts := strings.Split(rest, "/")
	var topic, sub, op string
	switch {
	case len(parts) == 1:
		topic, op = splitOp(parts[0])
	case len(parts) == 3 && parts[1] == "eventsubscriptions":
		topic = parts[0]
		sub, op = splitOp(parts[2])
	}
	if op == "" || (sub == "") != (op == "publish") {
		writeError(w, http.StatusNotFound, "NotFound", "no Event Grid operation at "+r.URL.Path)
		return
	}
	s.mu.Lock()
	if op == "publish" {
		s.stats.PublishRequests++
	}
	if st := s.fault(op); st != 0 {
		s.mu.Unlock()
		writeError(w, st, statusCode(st), "injected failure")
		return
	}
	s.mu.Unlock()
	switch op {
	case "publish":
		s.publish(w, r, topic)
	case "receive":
		s.receive(w, r, topic, sub)
	case "acknowledge", "release", "reject", "renewLock":
		s.settle(w, r, topic, sub, op)
	default:
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("unknown operation %q", op))
	}
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, topic string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	evs, err := cloudEvents(r, body, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	if !s.validateAll(w, evs, MaxNamespaceEvents) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("topic %q does not exist", topic))
		return
	}
	for _, sub := range t.subs {
		for _, raw := range evs {
			sub.q.push(&message{raw: raw})
		}
		sub.notify()
	}
	s.stats.PublishedEvents += len(evs)
	writeJSON(w, map[string]any{})
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request, topic, subName string) {
	q := r.URL.Query()
	maxEvents, maxWait := 1, 60
	var err error
	if v := q.Get("maxEvents"); v != "" {
		if maxEvents, err = strconv.Atoi(v); err != nil || maxEvents < 1 || maxEvents > 100 {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("maxEvents must be between 1 and 100, got %q", v))
			return
		}
	}
	if v := q.Get("maxWaitTime"); v != "" {
		if maxWait, err = strconv.Atoi(v); err != nil || maxWait < 10 || maxWait > 120 {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("maxWaitTime must be between 10 and 120 seconds, got %q", v))
			return
		}
	}
	deadline := time.NewTimer(time.Duration(maxWait) * time.Second)
	defer deadline.Stop()
	s.mu.Lock()
	s.stats.ReceiveRequests++
	s.mu.Unlock()
	for {
		s.mu.Lock()
		sub := s.sub(topic, subName)
		if sub == nil {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("event subscription %q of topic %q does not exist", subName, topic))
			return
		}
		now := time.Now()
		sub.expire(now, &s.stats)
		if sub.q.readyLen() > 0 && r.Context().Err() == nil {
			out := make([]map[string]any, 0, min(maxEvents, sub.q.readyLen()))
			for len(out) < maxEvents && sub.q.readyLen() > 0 {
				m := sub.q.pop()
				if m.gone {
					continue
				}
				tok := sub.q.lock(m, now, sub.cfg.LockDuration)
				out = append(out, map[string]any{
					"brokerProperties": map[string]any{"lockToken": tok, "deliveryCount": m.deliveries},
					"event":            m.raw,
				})
			}
			s.mu.Unlock()
			writeJSON(w, map[string]any{"value": out})
			return
		}
		changed, next := sub.changed, sub.q.next()
		s.mu.Unlock()
		if !s.waitReceive(w, r, changed, next, deadline.C) {
			return
		}
	}
}

// waitReceive waits for a change, the next due time, or the end of the long
// poll; it reports whether to look again (false: the response is written or
// the client left).
func (s *Server) waitReceive(w http.ResponseWriter, r *http.Request, changed <-chan struct{}, next time.Time, deadline <-chan time.Time) bool {
	var wake <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(time.Until(next) + time.Millisecond)
		defer t.Stop()
		wake = t.C
	}
	select {
	case <-changed:
	case <-wake:
	case <-deadline:
		writeJSON(w, map[string]any{"value": []any{}})
		return false
	case <-r.Context().Done():
		return false
	case <-s.done:
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "server closing")
		return false
	}
	return true
}

func (s *Server) settle(w http.ResponseWriter, r *http.Request, topic, subName, op string) {
	var delay time.Duration
	var delaySecs int
	if op == "release" {
		v := r.URL.Query().Get("releaseDelayInSeconds")
		switch v {
		case "", "0", "10", "60", "600", "3600":
			delaySecs, _ = strconv.Atoi(v)
			delay = time.Duration(float64(time.Duration(delaySecs)*time.Second) * s.opts.ReleaseDelayScale)
		default:
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("releaseDelayInSeconds must be 0, 10, 60, 600 or 3600, got %q", v))
			return
		}
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		LockTokens []string `json:"lockTokens"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.LockTokens) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", `the body must be {"lockTokens":[...]} with at least one token`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.sub(topic, subName)
	if sub == nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("event subscription %q of topic %q does not exist", subName, topic))
		return
	}
	s.stats.MaxLockTokens = max(s.stats.MaxLockTokens, len(req.LockTokens))
	now := time.Now()
	sub.expire(now, &s.stats)
	succeeded := []string{}
	failed := []map[string]any{}
	for _, tok := range req.LockTokens {
		m := sub.q.live(tok, now)
		if m == nil || (op == "renewLock" && now.Sub(m.lockedAt) >= time.Hour) {
			failed = append(failed, map[string]any{"lockToken": tok,
				"error": map[string]string{"code": "TokenLost", "message": "the lock token is unknown or its lock expired"}})
			continue
		}
		succeeded = append(succeeded, tok)
		switch op {
		case "acknowledge":
			sub.q.unlock(m)
			m.gone = true
			s.stats.Acknowledged++
		case "release":
			sub.q.unlock(m)
			sub.redeliver(m, now, delay, "MaxDeliveryCountExceeded")
			s.stats.Released++
			s.stats.ReleaseDelays[delaySecs]++
		case "reject":
			sub.q.unlock(m)
			sub.deadLetter(m, now, "Rejected")
			s.stats.Rejected++
		case "renewLock":
			sub.q.renew(m, now, sub.cfg.LockDuration)
			s.stats.Renewed++
		}
	}
	if op == "release" {
		sub.notify()
	}
	writeJSON(w, map[string]any{"succeededLockTokens": succeeded, "failedLockTokens": failed})
}
