// Package egtest is an HTTPS test server for the Azure Event Grid data
// plane, for tests that drive the real Azure SDK clients (azeventgrid,
// aznamespaces) or any other HTTP client against it.
//
// It emulates, with the api-versions the SDK clients send:
//
//   - namespace topics (api-version 2024-06-01): POST /topics/{topic}:publish
//     with application/cloudevents+json, application/cloudevents-batch+json
//     or a binary-mode CloudEvent; /topics/{topic}/eventsubscriptions/{sub}
//     :receive (maxEvents 1–100, maxWaitTime 10–120 s long poll),
//     :acknowledge, :release (releaseDelayInSeconds 0, 10, 60, 600, 3600),
//     :reject and :renewLock with {"lockTokens":[…]}. Events fan out to every
//     queue subscription of the topic; a received event is locked for the
//     subscription's lock duration and carries a lock token and a delivery
//     count; an expired lock makes it available again; a lock can be renewed
//     within an hour of the receive; after MaxDeliveryCount deliveries a
//     released or expired event is dead-lettered (or dropped), as is a
//     rejected one. Failed lock tokens are reported per token with code
//     TokenLost.
//   - basic topics (api-version 2018-01-01): POST /basic/{topic}/api/events
//     with a CloudEvents batch or an Event Grid schema array, pushed to webhook
//     subscriptions with Event Grid's validation handshakes, delivery headers
//     (aeg-delivery-count, aeg-event-type, aeg-subscription-name), retries and
//     dead-lettering by status code.
//   - authentication: "Authorization: SharedAccessKey <key>" (namespaces),
//     "aeg-sas-key: <key>" (basic topics), or "Authorization: Bearer <token>"
//     checked by Options.VerifyToken. Errors have Azure's JSON error body.
//   - limits: 1 MiB per request body, 1,000 events per namespace publish,
//     5,000 per basic topic publish.
//
// Where it differs from Event Grid: topics and subscriptions are created
// and deleted with Go methods, not the control plane; there are no filters, event time to
// live, retention or throughput limits; releases can be scaled down in time
// (Options.ReleaseDelayScale) and lock durations shorter than Event Grid's
// 60 s minimum are allowed, so tests run fast; dead letters are kept in memory
// (DeadLetters) instead of a storage container; webhook pushes retry a failed
// batch after a fixed delay and hold the subscription's later events until
// it is settled; delivery headers are not sent with the validation
// handshake; HTTP webhook URLs are allowed.
package egtest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// DefaultKey is the access key a server accepts when Options.Key is empty.
const DefaultKey = "egtest-key"

// API versions the server accepts.
const (
	NamespaceAPIVersion = "2024-06-01"
	BasicAPIVersion     = "2018-01-01"
)

// Limits the server enforces.
const (
	MaxRequestBytes    = 1 << 20
	MaxNamespaceEvents = 1000
	MaxBasicEvents     = 5000
)

// Options configure a Server. The zero value is valid.
type Options struct {
	// Key is the access key (default DefaultKey).
	Key string
	// VerifyToken accepts or refuses bearer tokens; nil refuses them all.
	VerifyToken func(token string) bool
	// ReleaseDelayScale multiplies release delays (default 1, as Event
	// Grid; tests use e.g. 0.05 so a 10 s release waits 500 ms).
	ReleaseDelayScale float64
}

// Server is a running test server. Close it when done.
type Server struct {
	opts Options
	ts   *httptest.Server

	mu     sync.Mutex
	topics map[string]*nsTopic
	basic  map[string]*basicTopic
	faults map[string][]int // operation -> statuses for the next requests
	reject func(event map[string]any) string
	stats  Stats

	done   chan struct{}
	ctx    context.Context // cancelled by Close, for outgoing pushes
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stats counts what the server did.
type Stats struct {
	PublishRequests int // namespace publish requests, refused ones included
	PublishedEvents int // events accepted by namespace topics
	ReceiveRequests int
	Acknowledged    int
	Released        int
	Rejected        int
	Renewed         int
	Expired         int // locks that ran out before the event was settled
	// ReleaseDelays counts successful releases by releaseDelayInSeconds.
	ReleaseDelays map[int]int
	// MaxLockTokens is the most lock tokens one settle request carried.
	MaxLockTokens int
}

// NewServer starts a TLS server. Use Client (or ClientOptions) so that
// clients trust its certificate.
func NewServer(opts Options) *Server {
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.ReleaseDelayScale <= 0 {
		opts.ReleaseDelayScale = 1
	}
	s := &Server{opts: opts, topics: map[string]*nsTopic{}, basic: map[string]*basicTopic{},
		faults: map[string][]int{}, stats: Stats{ReleaseDelays: map[int]int{}}, done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // clients hanging up on Close are expected
	s.ts.StartTLS()
	return s
}

// Close stops the server and its webhook deliveries.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	close(s.done)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.ts.Close()
}

// Endpoint is the namespace endpoint, "https://127.0.0.1:<port>".
func (s *Server) Endpoint() string { return s.ts.URL }

// Host is the server's host:port, for crossbus URLs.
func (s *Server) Host() string { return strings.TrimPrefix(s.ts.URL, "https://") }

// Key is the access key the server accepts.
func (s *Server) Key() string { return s.opts.Key }

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// ClientOptions returns Azure SDK client options that reach the server, with
// SDK retries shortened so fault tests stay quick.
func (s *Server) ClientOptions() azcore.ClientOptions {
	var o azcore.ClientOptions
	o.Transport = s.ts.Client()
	o.Retry.RetryDelay = 5 * time.Millisecond
	o.Retry.MaxRetryDelay = 20 * time.Millisecond
	return o
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ReleaseDelays = make(map[int]int, len(s.stats.ReleaseDelays))
	for k, v := range s.stats.ReleaseDelays {
		st.ReleaseDelays[k] = v
	}
	return st
}

// FailNext makes the next len(statuses) requests of an operation answer with
// those statuses (and an Azure error body) instead of being served.
// Operations: "publish", "receive", "acknowledge", "release", "reject",
// "renewLock", "basicPublish".
func (s *Server) FailNext(op string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], statuses...)
}

// RejectEvents installs a publish check for namespace and basic topics: an
// event for which it returns a non-empty reason makes the whole request fail
// with 400 Bad Request, as Event Grid refuses a request with an invalid
// event. nil removes the check.
func (s *Server) RejectEvents(check func(event map[string]any) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = check
}

// fault pops a configured failure status for op (0 if none). Call with s.mu held.
func (s *Server) fault(op string) int {
	f := s.faults[op]
	if len(f) == 0 {
		return 0
	}
	s.faults[op] = f[1:]
	return f[0]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/topics/"):
		s.serveNamespace(w, r, strings.TrimPrefix(path, "/topics/"))
	case strings.HasPrefix(path, "/basic/"):
		s.serveBasic(w, r, strings.TrimPrefix(path, "/basic/"))
	default:
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no Event Grid operation at %s", path))
	}
}

// authorize checks the request's credentials; keyHeader is where a key may
// travel ("Authorization" with the SharedAccessKey scheme, or "aeg-sas-key").
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, keyHeader string) bool {
	auth := r.Header.Get("Authorization")
	var ok bool
	switch {
	case keyHeader == "aeg-sas-key" && r.Header.Get("aeg-sas-key") != "":
		ok = equal(r.Header.Get("aeg-sas-key"), s.opts.Key)
	case strings.HasPrefix(auth, "SharedAccessKey ") && keyHeader == "Authorization":
		ok = equal(strings.TrimPrefix(auth, "SharedAccessKey "), s.opts.Key)
	case strings.HasPrefix(auth, "Bearer "):
		ok = s.opts.VerifyToken != nil && s.opts.VerifyToken(strings.TrimPrefix(auth, "Bearer "))
	}
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "the request has no valid access key or bearer token")
	}
	return ok
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// writeError writes Azure's error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ms-error-code", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// statusCode names a fault status for its error body.
func statusCode(status int) string {
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}
