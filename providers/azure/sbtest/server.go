package sbtest

import (
	"container/heap"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Errors returned by the entity administration methods.
var (
	// ErrNotFound: the named queue, topic or subscription does not exist.
	ErrNotFound = errors.New("sbtest: entity not found")
	// ErrExists: an entity with that name already exists.
	ErrExists = errors.New("sbtest: entity already exists")
	// ErrClosed: the server is closed.
	ErrClosed = errors.New("sbtest: server closed")
)

// Options configure a Server. The zero value is valid.
type Options struct {
	// Addr is the TCP address to listen on (default "127.0.0.1:0", a free
	// port on the loopback interface).
	Addr string
	// MaxMessageSize is the largest message (or message batch) a sender may
	// transfer, in bytes, announced as the link's max-message-size (default
	// 262144, the Standard tier's 256 KiB).
	MaxMessageSize int
	// SharedAccessKeyName and SharedAccessKey are the credentials of the
	// namespace's connection string (defaults "RootManageSharedAccessKey" and
	// a fixed test key). $cbs put-token requests carrying a SAS token are
	// verified against them; tokens of type jwt are accepted unverified.
	SharedAccessKeyName string
	SharedAccessKey     string
}

// EntityOptions configure a queue, topic or subscription. The zero value
// takes Service Bus's defaults.
type EntityOptions struct {
	// LockDuration is how long a peek-lock delivery (or a session) stays
	// locked without renewal (default 60s, as Service Bus). Queues and
	// subscriptions.
	LockDuration time.Duration
	// MaxDeliveryCount: a message whose delivery count reaches it and is
	// abandoned (or whose lock expires) again moves to the dead-letter queue
	// with reason "MaxDeliveryCountExceeded" (default 10). Queues and
	// subscriptions.
	MaxDeliveryCount int
	// RequiresSession makes the entity session-aware: messages are grouped by
	// SessionID and received through session receivers only. Queues and
	// subscriptions.
	RequiresSession bool
	// DuplicateDetectionWindow, when positive, drops a message whose
	// MessageID was already accepted within the window. Queues and topics.
	DuplicateDetectionWindow time.Duration
	// Filter is the SQL filter expression of the rule a subscription is
	// created with (DefaultRuleName); "" selects every message
	// (TrueFilter). Subscriptions; see SQLFilter and AddRule.
	Filter string
}

func (o EntityOptions) withDefaults() EntityOptions {
	if o.LockDuration <= 0 {
		o.LockDuration = 60 * time.Second
	}
	if o.MaxDeliveryCount <= 0 {
		o.MaxDeliveryCount = 10
	}
	return o
}

// Server is a Service Bus-compatible AMQP 1.0 broker for tests. See the
// package documentation for what it emulates. It is safe for concurrent use.
type Server struct {
	opts  Options
	ln    net.Listener
	admin *httptest.Server // the management API (see HTTPClient)

	mu     sync.Mutex
	queues map[string]*store // queues by lower-case name
	topics map[string]*topic // topics by lower-case name
	conns  map[*conn]struct{}
	closed bool

	schedMu sync.Mutex
	sched   schedHeap // scheduled messages of every entity

	done chan struct{}
	wg   sync.WaitGroup
}

// NewServer starts a broker listening on opts.Addr. Stop it with Close.
func NewServer(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 256 * 1024
	}
	if opts.SharedAccessKeyName == "" {
		opts.SharedAccessKeyName = "RootManageSharedAccessKey"
	}
	if opts.SharedAccessKey == "" {
		opts.SharedAccessKey = "c2J0ZXN0LWtleS1mb3ItdGVzdHMtb25seQ=="
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("sbtest: listen on %s: %w", opts.Addr, err)
	}
	s := &Server{opts: opts, ln: ln, queues: map[string]*store{}, topics: map[string]*topic{},
		conns: map[*conn]struct{}{}, done: make(chan struct{})}
	s.startAdmin()
	s.wg.Add(2)
	go s.accept()
	go s.clock()
	return s, nil
}

// Addr is the address the server listens on ("127.0.0.1:PORT").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ConnectionString is a Service Bus connection string for this server, with
// UseDevelopmentEmulator=true so that the SDK speaks plain AMQP (no TLS).
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true",
		s.Addr(), s.opts.SharedAccessKeyName, s.opts.SharedAccessKey)
}

// Close stops the server: it closes the listener and every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	close(s.done)
	err := s.ln.Close()
	s.admin.Close()
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// CreateQueue creates a queue.
func (s *Server) CreateQueue(name string, o EntityOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	if s.queues[key] != nil || s.topics[key] != nil {
		return fmt.Errorf("%w: %q", ErrExists, name)
	}
	s.queues[key] = newQueueStore(s, name, o.withDefaults())
	return nil
}

// CreateTopic creates a topic. Only DuplicateDetectionWindow of o applies.
func (s *Server) CreateTopic(name string, o EntityOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	if s.queues[key] != nil || s.topics[key] != nil {
		return fmt.Errorf("%w: %q", ErrExists, name)
	}
	t := &topic{srv: s, name: name, subs: map[string]*store{}, opts: o.withDefaults()}
	t.sched.init()
	if o.DuplicateDetectionWindow > 0 {
		t.dedup = newDedup(o.DuplicateDetectionWindow)
	}
	s.topics[key] = t
	return nil
}

// CreateSubscription creates a subscription of a topic. It receives the
// messages sent to the topic from now on that o.Filter selects (every
// message without one: Service Bus's default rule). An invalid filter fails
// with an error wrapping ErrInvalidFilter.
func (s *Server) CreateSubscription(topicName, name string, o EntityOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	rule, err := compileRule(Rule{Name: DefaultRuleName, Filter: o.Filter})
	if err != nil {
		return err
	}
	s.mu.Lock()
	t := s.topics[strings.ToLower(topicName)]
	s.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: topic %q", ErrNotFound, topicName)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := strings.ToLower(name)
	if t.subs[key] != nil {
		return fmt.Errorf("%w: subscription %q of topic %q", ErrExists, name, topicName)
	}
	o = o.withDefaults()
	o.DuplicateDetectionWindow = 0
	st := newStore(s, t.name+"/Subscriptions/"+name, o)
	st.rules = []compiledRule{rule}
	next := make(map[string]*store, len(t.subs)+1)
	for k, v := range t.subs {
		next[k] = v
	}
	next[key] = st
	t.subs = next
	return nil
}

// DeleteQueue deletes a queue with its messages and dead-letter queue, as
// deleting it in the portal or through the management API does: receivers
// attached to it (or to its dead-letter queue) are detached with
// amqp:not-found, and sending to it or settling its messages fails with
// amqp:not-found from then on.
func (s *Server) DeleteQueue(name string) error {
	s.mu.Lock()
	key := strings.ToLower(name)
	st := s.queues[key]
	delete(s.queues, key)
	s.mu.Unlock()
	if st == nil {
		return fmt.Errorf("%w: queue %q", ErrNotFound, name)
	}
	st.delete()
	return nil
}

// DeleteTopic deletes a topic and all its subscriptions (see
// DeleteSubscription); its scheduled messages are dropped.
func (s *Server) DeleteTopic(name string) error {
	s.mu.Lock()
	key := strings.ToLower(name)
	t := s.topics[key]
	delete(s.topics, key)
	s.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: topic %q", ErrNotFound, name)
	}
	t.mu.Lock()
	t.deleted = true
	subs := t.subs
	t.subs = map[string]*store{}
	t.mu.Unlock()
	for _, st := range subs {
		st.delete()
	}
	return nil
}

// DeleteSubscription deletes a subscription of a topic with its messages
// and dead-letter queue: receivers attached to it are detached with
// amqp:not-found, as Service Bus detaches them, and it gets no more of the
// topic's messages.
func (s *Server) DeleteSubscription(topicName, name string) error {
	s.mu.Lock()
	t := s.topics[strings.ToLower(topicName)]
	s.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: topic %q", ErrNotFound, topicName)
	}
	key := strings.ToLower(name)
	t.mu.Lock()
	st := t.subs[key]
	if st != nil {
		next := make(map[string]*store, len(t.subs))
		for k, v := range t.subs {
			if k != key {
				next[k] = v
			}
		}
		t.subs = next
	}
	t.mu.Unlock()
	if st == nil {
		return fmt.Errorf("%w: subscription %q of topic %q", ErrNotFound, name, topicName)
	}
	st.delete()
	return nil
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/$\\?#") || len(name) > 260 {
		return fmt.Errorf("sbtest: invalid entity name %q (1-260 characters, no '/', '$', '\\', '?', '#')", name)
	}
	return nil
}

// Counts are the messages an entity holds, by state.
type Counts struct {
	Active       int // available or locked
	Locked       int
	Deferred     int
	Scheduled    int // scheduled on a queue (topics hold their own)
	DeadLettered int
}

// Counts reports the messages of a queue ("q") or subscription
// ("t/Subscriptions/s").
func (s *Server) Counts(path string) (Counts, error) {
	st, _, err := s.resolveStore(path)
	if err != nil {
		return Counts{}, err
	}
	st.mu.Lock()
	c := Counts{Active: len(st.all) - len(st.deferred), Locked: len(st.locked), Deferred: len(st.deferred)}
	st.mu.Unlock()
	if st.sends != nil {
		c.Scheduled = st.sends.scheduledCount()
	}
	st.dlq.mu.Lock()
	c.DeadLettered = len(st.dlq.all)
	st.dlq.mu.Unlock()
	return c, nil
}

// resolveStore maps a receive path to its store: "q", "t/Subscriptions/s",
// each optionally followed by "/$DeadLetterQueue".
func (s *Server) resolveStore(path string) (st *store, dead bool, err error) {
	p := strings.Trim(path, "/")
	lower := strings.ToLower(p)
	if base, ok := strings.CutSuffix(lower, "/$deadletterqueue"); ok {
		lower, dead = base, true
	}
	parts := strings.Split(lower, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(parts) == 1:
		st = s.queues[parts[0]]
	case len(parts) == 3 && parts[1] == "subscriptions":
		if t := s.topics[parts[0]]; t != nil {
			t.mu.Lock()
			st = t.subs[parts[2]]
			t.mu.Unlock()
		}
	}
	if st == nil {
		return nil, false, fmt.Errorf("%w: %q", ErrNotFound, path)
	}
	if dead {
		st = st.dlq
	}
	return st, dead, nil
}

// resolveTarget maps a send path to a queue or topic.
func (s *Server) resolveTarget(path string) (sendTarget, error) {
	key := strings.ToLower(strings.Trim(path, "/"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[key]; q != nil {
		return q.sends, nil
	}
	if t := s.topics[key]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, path)
}

func (s *Server) allStores() []*store {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*store, 0, len(s.queues)*2)
	for _, q := range s.queues {
		out = append(out, q, q.dlq)
	}
	for _, t := range s.topics {
		t.mu.Lock()
		for _, st := range t.subs {
			out = append(out, st, st.dlq)
		}
		t.mu.Unlock()
	}
	return out
}

// clock expires locks and releases scheduled messages.
func (s *Server) clock() {
	defer s.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.releaseScheduled(now)
			for _, st := range s.allStores() {
				st.expire(now)
			}
		}
	}
}

// scheduled is one message waiting for its enqueue time.
type scheduled struct {
	at     time.Time
	seq    int64
	target scheduler
}

type scheduler interface {
	fire(seq int64)
}

type schedHeap []scheduled

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h schedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *schedHeap) Push(x any)        { *h = append(*h, x.(scheduled)) }
func (h *schedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *Server) addScheduled(e scheduled) {
	s.schedMu.Lock()
	heap.Push(&s.sched, e)
	s.schedMu.Unlock()
}

func (s *Server) releaseScheduled(now time.Time) {
	for {
		s.schedMu.Lock()
		if s.sched.Len() == 0 || s.sched[0].at.After(now) {
			s.schedMu.Unlock()
			return
		}
		e := heap.Pop(&s.sched).(scheduled)
		s.schedMu.Unlock()
		e.target.fire(e.seq)
	}
}
