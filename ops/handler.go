package ops

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/topology"
)

//go:embed web
var webFS embed.FS

// HandlerConfig configures the admin handler.
type HandlerConfig struct {
	// Bus is the service's bus (required).
	Bus *crossbus.Bus
	// Router, when set, gives the topology and the live counters, and the
	// dead-letter sources of its routes: the native queue of every route
	// without a dead-letter topic.
	Router *crossbus.Router
	// Service names the service in the topology and the console.
	Service string
	// Sources are dead-letter sources besides the router's: routes whose
	// dead letters go to a dead-letter topic need one naming the
	// subscription of that topic to read (Source.DeadLetterTopic and
	// DeadLetterSubscription). A source for a route replaces the default.
	Sources []Source
	// Read tunes how dead letters are read.
	Read Options
	// Archive, when set, enables the archive and replay endpoints.
	Archive *Archive
	// ArchiveStore enables them without an archive on this bus (replaying
	// what another process archived).
	ArchiveStore ArchiveStore

	// Token is the bearer token callers must send
	// ("Authorization: Bearer <token>").
	Token string
	// Authorize, instead of or besides Token, checks a request's
	// credentials and names the caller for the log (who); an error refuses
	// the request (401). It runs before the request's body is read.
	Authorize func(r *http.Request) (who string, err error)
	// UnauthenticatedLoopbackOnly serves without authentication, to
	// requests from loopback addresses only. Anyone who can open a
	// connection from the machine can then redrive, purge and replay:
	// use it for local development and tests.
	UnauthenticatedLoopbackOnly bool

	// Logger receives one record per mutating call, naming who asked
	// (default: discarded).
	Logger *slog.Logger
}

// Handler is the admin HTTP handler a service mounts: a JSON API over the
// topology, live counters, dead letters, archive and replays, and a web
// console at its root. Mount it under a prefix with http.StripPrefix:
//
//	h, err := ops.NewHandler(ops.HandlerConfig{Bus: bus, Router: r, Token: os.Getenv("ADMIN_TOKEN")})
//	mux.Handle("/admin/", http.StripPrefix("/admin", h))
//
// Every API call is authenticated before its body is read; the console's
// static files are not (they hold no data: the console asks for the
// token). Errors are RFC 9457 problem documents (application/problem+json).
type Handler struct {
	cfg   HandlerConfig
	log   *slog.Logger
	mux   *http.ServeMux
	store ArchiveStore

	mu      sync.Mutex
	running map[string]context.CancelFunc // replays started here
	wg      sync.WaitGroup
	closing context.Context
	close   context.CancelFunc
}

// NewHandler returns the admin handler. It refuses a configuration
// without authentication unless UnauthenticatedLoopbackOnly says so.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Bus == nil {
		return nil, errorf("%w: NewHandler needs a bus", crossbus.ErrInvalidOption)
	}
	if cfg.Token == "" && cfg.Authorize == nil && !cfg.UnauthenticatedLoopbackOnly {
		return nil, errorf("%w: the admin handler needs authentication: set Token or Authorize (or UnauthenticatedLoopbackOnly for local use)", crossbus.ErrInvalidOption)
	}
	if cfg.Token != "" && len(cfg.Token) < 16 {
		return nil, errorf("%w: admin token too short (%d characters; use at least 16)", crossbus.ErrInvalidOption, len(cfg.Token))
	}
	for _, s := range cfg.Sources {
		if err := s.check(); err != nil {
			return nil, err
		}
		if err := s.checkRoute(); err != nil {
			return nil, errorf("a handler's source names its route: %w", err)
		}
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), running: map[string]context.CancelFunc{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.store = cfg.ArchiveStore
	if cfg.Archive != nil {
		h.store = cfg.Archive.Store()
	}
	h.closing, h.close = context.WithCancel(context.Background())
	h.routes()
	return h, nil
}

// Close interrupts the replays the handler started (they can be resumed)
// and waits for them to save their progress.
func (h *Handler) Close() {
	h.close()
	h.wg.Wait()
}

type apiFunc func(w http.ResponseWriter, r *http.Request, who string) error

func (h *Handler) routes() {
	static, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(static)
	h.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, problemf(http.StatusMethodNotAllowed, "the console's files are read with GET"))
			return
		}
		files.ServeHTTP(w, r)
	}))
	api := func(pattern string, mutating bool, fn apiFunc) {
		h.mux.Handle(pattern, h.authenticated(mutating, fn))
	}
	api("GET /api/topology", false, h.getTopology)
	api("GET /api/counters", false, h.getCounters)
	api("GET /api/deadletters", false, h.getSources)
	api("GET /api/deadletters/{topic}/{subscription}", false, h.listDeadLetters)
	api("GET /api/deadletters/{topic}/{subscription}/groups", false, h.getGroups)
	api("GET /api/deadletters/{topic}/{subscription}/items/{id}", false, h.getDeadLetter)
	api("POST /api/deadletters/{topic}/{subscription}/redrive", true, h.redrive)
	api("POST /api/deadletters/{topic}/{subscription}/purge", true, h.purge)
	api("GET /api/archive", false, h.getArchive)
	api("GET /api/replays", false, h.getReplays)
	api("POST /api/replays", true, h.startReplay)
	api("GET /api/replays/{id}", false, h.getReplay)
	api("POST /api/replays/{id}/resume", true, h.resumeReplay)
	api("POST /api/replays/{id}/stop", true, h.stopReplay)
	h.mux.Handle("/api/", h.authenticated(false, func(http.ResponseWriter, *http.Request, string) error {
		return problemf(http.StatusNotFound, "no such endpoint")
	}))
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'")
	}
	h.mux.ServeHTTP(w, r)
}

// authenticated checks the caller before anything of the request is read,
// runs fn, writes its error as a problem, and logs mutating calls.
func (h *Handler) authenticated(mutating bool, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := h.authenticate(r)
		if err != nil {
			if mutating {
				h.log.Warn("crossbus/ops: admin request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
			}
			writeProblem(w, r, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		err = fn(w, r, who)
		if mutating {
			attrs := []any{"who", who, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr}
			if err != nil {
				h.log.Warn("crossbus/ops: admin call failed", append(attrs, "error", err)...)
			} else {
				h.log.Info("crossbus/ops: admin call", attrs...)
			}
		}
		if err != nil {
			writeProblem(w, r, err)
		}
	})
}

func (h *Handler) authenticate(r *http.Request) (string, error) {
	if h.cfg.Token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(h.cfg.Token)) == 1 {
			return "token", nil
		}
	}
	if h.cfg.Authorize != nil {
		who, err := h.cfg.Authorize(r)
		if err == nil {
			if who == "" {
				who = "authorized"
			}
			return who, nil
		}
		return "", &problem{Status: http.StatusUnauthorized, Title: "Unauthorized", Detail: "the credentials were refused: " + err.Error()}
	}
	if h.cfg.UnauthenticatedLoopbackOnly && h.cfg.Token == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
			return "unauthenticated@" + host, nil
		}
		return "", &problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: "this admin endpoint serves unauthenticated requests from loopback addresses only"}
	}
	if r.Header.Get("Authorization") == "" {
		return "", &problem{Status: http.StatusUnauthorized, Title: "Unauthorized", Detail: "send the admin token: Authorization: Bearer <token>"}
	}
	return "", &problem{Status: http.StatusUnauthorized, Title: "Unauthorized", Detail: "the admin token is wrong"}
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

func (p *problem) Error() string { return p.Detail }

func problemf(status int, format string, a ...any) error {
	return &problem{Status: status, Title: http.StatusText(status), Detail: fmt.Sprintf(format, a...)}
}

// writeProblem maps an error to its status and writes it as a problem.
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	var p *problem
	if !errors.As(err, &p) {
		status := http.StatusInternalServerError
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, ErrNotFound), errors.Is(err, crossbus.ErrTopicNotFound), errors.Is(err, crossbus.ErrSubscriptionNotFound):
			status = http.StatusNotFound
		case errors.Is(err, crossbus.ErrInvalidOption), errors.Is(err, crossbus.ErrInvalidName), errors.Is(err, crossbus.ErrInvalidPattern):
			status = http.StatusBadRequest
		case errors.Is(err, crossbus.ErrNotSupported):
			status = http.StatusNotImplemented
		case errors.Is(err, crossbus.ErrClosed):
			status = http.StatusServiceUnavailable
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			status = http.StatusServiceUnavailable
		}
		p = &problem{Status: status, Title: http.StatusText(status), Detail: err.Error()}
	}
	out := *p
	if out.Type == "" {
		out.Type = "about:blank"
	}
	if out.Title == "" {
		out.Title = http.StatusText(out.Status)
	}
	out.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	if out.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crossbus admin"`)
	}
	w.WriteHeader(out.Status)
	_ = json.NewEncoder(w).Encode(out)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readJSON decodes a request body strictly.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return problemf(http.StatusUnsupportedMediaType, "send the body as application/json, not %s", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return problemf(http.StatusBadRequest, "the request needs a JSON body")
		}
		return problemf(http.StatusBadRequest, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return problemf(http.StatusBadRequest, "malformed JSON body: more than one value")
	}
	return nil
}

// Topology returns the service's topology (empty without a router).
func (h *Handler) topology() topology.Topology {
	t := topology.Topology{Routes: []topology.Route{}}
	if h.cfg.Router != nil {
		t = h.cfg.Router.Topology()
	}
	t.Service = h.cfg.Service
	return t
}

func (h *Handler) getTopology(w http.ResponseWriter, r *http.Request, _ string) error {
	t := h.topology()
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		w.Header().Set("Content-Type", "application/json")
		return t.WriteJSON(w)
	case "mermaid":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return t.WriteMermaid(w)
	case "dot":
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		return t.WriteDOT(w)
	case "svg":
		w.Header().Set("Content-Type", "image/svg+xml")
		return t.WriteSVG(w)
	default:
		return problemf(http.StatusBadRequest, "unknown topology format %q (json, mermaid, dot or svg)", f)
	}
}

func (h *Handler) getCounters(w http.ResponseWriter, r *http.Request, _ string) error {
	c := []topology.Counters{}
	if h.cfg.Router != nil {
		c = h.cfg.Router.Counters(r.Context())
	}
	return writeJSON(w, http.StatusOK, map[string]any{"time": time.Now().UTC(), "routes": c})
}

// SourceInfo describes a dead-letter source the handler serves.
type SourceInfo struct {
	Source
	// Readable is false for a route whose dead letters go to a dead-letter
	// topic that no configured source reads; Note says what to configure.
	Readable bool   `json:"readable"`
	Note     string `json:"note,omitempty"`
}

// sources lists the dead-letter sources: the configured ones, then the
// router's routes not covered by one.
func (h *Handler) sources() []SourceInfo {
	var out []SourceInfo
	have := map[[2]string]bool{}
	for _, s := range h.cfg.Sources {
		out = append(out, SourceInfo{Source: s, Readable: true})
		have[[2]string{s.Topic, s.Subscription}] = true
	}
	for _, rt := range h.topology().Routes {
		if have[[2]string{rt.Topic, rt.Subscription}] {
			continue
		}
		have[[2]string{rt.Topic, rt.Subscription}] = true
		si := SourceInfo{Source: Source{Topic: rt.Topic, Subscription: rt.Subscription}, Readable: true}
		if rt.DeadLetterTopic != "" {
			si.Readable = false
			si.Note = fmt.Sprintf("dead letters go to topic %q: configure a Source with a subscription of it to read them", rt.DeadLetterTopic)
		}
		out = append(out, si)
	}
	return out
}

func (h *Handler) getSources(w http.ResponseWriter, _ *http.Request, _ string) error {
	s := h.sources()
	if s == nil {
		s = []SourceInfo{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sources": s})
}

// deadLetters returns the operations of the route named in the path.
func (h *Handler) deadLetters(r *http.Request) (*DeadLetters, error) {
	topic, sub := r.PathValue("topic"), r.PathValue("subscription")
	for _, s := range h.sources() {
		if s.Topic == topic && s.Subscription == sub {
			if !s.Readable {
				return nil, problemf(http.StatusConflict, "route %q of topic %q: %s", sub, topic, s.Note)
			}
			return NewDeadLetters(h.cfg.Bus, s.Source, h.cfg.Read)
		}
	}
	if h.cfg.Router == nil && len(h.cfg.Sources) == 0 {
		// No router to check against: serve any route's native queue.
		return NewDeadLetters(h.cfg.Bus, Source{Topic: topic, Subscription: sub}, h.cfg.Read)
	}
	return nil, problemf(http.StatusNotFound, "no route for subscription %q of topic %q", sub, topic)
}

func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request, _ string) error {
	d, err := h.deadLetters(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	o := ListOptions{Group: q.Get("group"), Page: q.Get("page")}
	if s := q.Get("limit"); s != "" {
		if o.Limit, err = strconv.Atoi(s); err != nil {
			return problemf(http.StatusBadRequest, "limit %q is not a number", s)
		}
	}
	p, err := d.List(r.Context(), o)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (h *Handler) getGroups(w http.ResponseWriter, r *http.Request, _ string) error {
	d, err := h.deadLetters(r)
	if err != nil {
		return err
	}
	g, err := d.Groups(r.Context())
	if err != nil {
		return err
	}
	if g == nil {
		g = []Group{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"groups": g})
}

func (h *Handler) getDeadLetter(w http.ResponseWriter, r *http.Request, _ string) error {
	d, err := h.deadLetters(r)
	if err != nil {
		return err
	}
	dl, err := d.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dl)
}

// RedriveRequest is the body of a redrive call.
type RedriveRequest struct {
	Selection
	To               string  `json:"to,omitempty"`
	Rate             float64 `json:"rate"`
	AllSubscriptions bool    `json:"allSubscriptions,omitempty"`
}

// streams reports whether the caller asked for progress lines
// (Accept: application/x-ndjson): one JSON object per line, {"progress":
// ...} while the operation runs, then {"result": ...} or {"error": problem}.
func streams(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")
}

type streamer struct {
	w       http.ResponseWriter
	enc     *json.Encoder
	flusher http.Flusher
	started bool
}

func newStreamer(w http.ResponseWriter) *streamer {
	f, _ := w.(http.Flusher)
	return &streamer{w: w, enc: json.NewEncoder(w), flusher: f}
}

func (s *streamer) send(v any) {
	if !s.started {
		s.w.Header().Set("Content-Type", "application/x-ndjson")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	_ = s.enc.Encode(v)
	if s.flusher != nil {
		s.flusher.Flush()
	}
}

// finish ends a streamed operation.
func (s *streamer) finish(r *http.Request, res any, err error) {
	if err != nil {
		p := &problem{Status: http.StatusInternalServerError, Title: "Operation stopped", Detail: err.Error(), Instance: r.URL.Path, Type: "about:blank"}
		s.send(map[string]any{"result": res, "error": p})
		return
	}
	s.send(map[string]any{"result": res})
}

func (h *Handler) redrive(w http.ResponseWriter, r *http.Request, _ string) error {
	var req RedriveRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	d, err := h.deadLetters(r)
	if err != nil {
		return err
	}
	o := RedriveOptions{To: req.To, Rate: req.Rate, AllSubscriptions: req.AllSubscriptions}
	if !streams(r) {
		res, err := d.Redrive(r.Context(), req.Selection, o)
		if err != nil && res.Done > 0 {
			return writeJSON(w, http.StatusOK, map[string]any{"result": res, "error": err.Error()})
		}
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	}
	if err := req.Selection.check(); err != nil {
		return err
	}
	if !(req.Rate > 0) {
		return problemf(http.StatusBadRequest, "redrive rate must be above 0 events per second, got %v", req.Rate)
	}
	s := newStreamer(w)
	o.Progress = func(p Progress) { s.send(map[string]any{"progress": p}) }
	res, err := d.Redrive(r.Context(), req.Selection, o)
	if err != nil && !s.started {
		return err
	}
	s.finish(r, res, err)
	return nil
}

func (h *Handler) purge(w http.ResponseWriter, r *http.Request, _ string) error {
	var sel Selection
	if err := readJSON(r, &sel); err != nil {
		return err
	}
	d, err := h.deadLetters(r)
	if err != nil {
		return err
	}
	if !streams(r) {
		res, err := d.Purge(r.Context(), sel, PurgeOptions{})
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	}
	if err := sel.check(); err != nil {
		return err
	}
	s := newStreamer(w)
	res, err := d.Purge(r.Context(), sel, PurgeOptions{Progress: func(p Progress) { s.send(map[string]any{"progress": p}) }})
	if err != nil && !s.started {
		return err
	}
	s.finish(r, res, err)
	return nil
}

func (h *Handler) needStore() error {
	if h.store == nil {
		return problemf(http.StatusNotImplemented, "this service keeps no archive (HandlerConfig.Archive)")
	}
	return nil
}

func (h *Handler) getArchive(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := h.needStore(); err != nil {
		return err
	}
	st, err := h.store.Stats(r.Context())
	if err != nil {
		return err
	}
	topics := []string{}
	if h.cfg.Archive != nil {
		topics = h.cfg.Archive.Topics()
	}
	var failures int64
	if h.cfg.Archive != nil {
		failures = h.cfg.Archive.Failures()
	}
	return writeJSON(w, http.StatusOK, map[string]any{"archived": topics, "topics": st, "failures": failures})
}

func (h *Handler) getReplays(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := h.needStore(); err != nil {
		return err
	}
	rs, err := h.store.Replays(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"replays": rs})
}

func (h *Handler) getReplay(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := h.needStore(); err != nil {
		return err
	}
	st, err := h.store.LoadReplay(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// startReplay saves the replay and runs it in the background; the caller
// follows it with GET /api/replays/{id}.
func (h *Handler) startReplay(w http.ResponseWriter, r *http.Request, who string) error {
	if err := h.needStore(); err != nil {
		return err
	}
	var req ReplayRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.ID != "" {
		if _, err := h.store.LoadReplay(r.Context(), req.ID); err == nil {
			return problemf(http.StatusConflict, "replay %q exists; resume it with POST /api/replays/%s/resume", req.ID, req.ID)
		}
	}
	rp, err := NewReplayer(h.cfg.Bus, h.store)
	if err != nil {
		return err
	}
	st, err := rp.Prepare(r.Context(), req)
	if err != nil {
		return err
	}
	h.run(rp, st.ID, who)
	return writeJSON(w, http.StatusAccepted, st)
}

func (h *Handler) resumeReplay(w http.ResponseWriter, r *http.Request, who string) error {
	if err := h.needStore(); err != nil {
		return err
	}
	id := r.PathValue("id")
	st, err := h.store.LoadReplay(r.Context(), id)
	if err != nil {
		return err
	}
	if st.Status == ReplayDone {
		return problemf(http.StatusConflict, "replay %q is done", id)
	}
	h.mu.Lock()
	_, busy := h.running[id]
	h.mu.Unlock()
	if busy {
		return problemf(http.StatusConflict, "replay %q is running", id)
	}
	rp, err := NewReplayer(h.cfg.Bus, h.store)
	if err != nil {
		return err
	}
	h.run(rp, id, who)
	return writeJSON(w, http.StatusAccepted, st)
}

func (h *Handler) stopReplay(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := h.needStore(); err != nil {
		return err
	}
	id := r.PathValue("id")
	h.mu.Lock()
	cancel, ok := h.running[id]
	h.mu.Unlock()
	if !ok {
		return problemf(http.StatusNotFound, "replay %q is not running here", id)
	}
	cancel()
	return writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "stopping"})
}

// run runs a replay in the background until it ends or the handler closes.
func (h *Handler) run(rp *Replayer, id, who string) {
	ctx, cancel := context.WithCancel(h.closing)
	h.mu.Lock()
	h.running[id] = cancel
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer cancel()
		st, err := rp.Run(ctx, id, nil)
		h.mu.Lock()
		delete(h.running, id)
		h.mu.Unlock()
		if err != nil {
			h.log.Warn("crossbus/ops: replay stopped", "who", who, "replay", id, "status", st.Status, "published", st.Published, "error", err)
			return
		}
		h.log.Info("crossbus/ops: replay done", "who", who, "replay", id, "published", st.Published)
	}()
}
