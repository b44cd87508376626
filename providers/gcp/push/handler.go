package push

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/gcp/internal/attempts"
)

// DefaultMaxBodyBytes bounds a request body unless Options.MaxBodyBytes
// says otherwise: a 10 MB Pub/Sub message, base64-encoded in a push
// envelope, with room for its attributes.
const DefaultMaxBodyBytes = 16 << 20

// Options configure a Handler. A Handler authenticates its callers unless
// told otherwise: set Verifier (normally NewGoogleOIDC), or set
// InsecureNoAuthentication where something in front of the Handler already
// authenticates them.
type Options struct {
	// Verifier checks each request before its body is read: a refused
	// request gets 401 (503 when the verifier cannot fetch its keys) and
	// not a byte of its body is read. Normally a GoogleOIDC
	// (NewGoogleOIDC(audience, serviceAccountEmail)). NewHandler refuses
	// Options with neither a Verifier nor InsecureNoAuthentication, and
	// calls the Verifier's Validate method, when it has one, to refuse a
	// verifier that would refuse every request.
	Verifier Verifier
	// InsecureNoAuthentication accepts every caller without checking who
	// it is. Set it only where the platform authenticates callers before
	// they reach the Handler (a Cloud Run service deployed with
	// --no-allow-unauthenticated, whose IAM invoker check runs first) or
	// for local development; anywhere else anyone who can reach the URL
	// can inject events. It cannot be combined with a Verifier.
	InsecureNoAuthentication bool
	// MaxBodyBytes bounds a request body: 0 means DefaultMaxBodyBytes, a
	// negative value is refused by NewHandler. A request over the limit
	// gets 413 and is not read further (not at all when its Content-Length
	// says so).
	MaxBodyBytes int64
	// Topic is the resource name of the topic behind a Pub/Sub push
	// subscription, "projects/P/topics/T", used as the source of plain
	// messages wrapped as messagePublished events; the envelope names only
	// the subscription, which is used when Topic is empty.
	Topic string
	// AcknowledgeMalformed answers 204 instead of 400 to requests that are
	// neither a valid CloudEvent nor a push envelope, so the platform
	// drops them; they are logged. The default keeps them with the
	// platform (see the package documentation).
	AcknowledgeMalformed bool
	// Logger receives rejected requests (default: discarded).
	Logger *slog.Logger
}

// Handler is an http.Handler that delivers pushed events to a
// crossbus.Endpoint and answers with the status the platform expects.
type Handler struct {
	ep       *crossbus.Endpoint
	opts     Options
	log      *slog.Logger
	attempts *attempts.Counter
}

// validator is a Verifier that can tell before it is used that it would
// refuse every request, as GoogleOIDC can; NewHandler calls Validate.
type validator interface {
	Validate() error
}

// NewHandler returns a Handler delivering to ep. Make ep with
// Bus.NewEndpoint or Router.Endpoint. It refuses Options that set neither
// Verifier nor InsecureNoAuthentication (or both), a GoogleOIDC without
// an audience or a service account email, and a negative MaxBodyBytes.
func NewHandler(ep *crossbus.Endpoint, opts Options) (*Handler, error) {
	if ep == nil {
		return nil, fmt.Errorf("%w: push: NewHandler(nil endpoint)", driver.ErrInvalidOption)
	}
	switch {
	case opts.Verifier == nil && !opts.InsecureNoAuthentication:
		return nil, fmt.Errorf("%w: push: NewHandler: no Options.Verifier: set one (push.NewGoogleOIDC(audience, serviceAccountEmail)), "+
			"or set Options.InsecureNoAuthentication to accept unauthenticated callers (local development, "+
			"or a Cloud Run service deployed with --no-allow-unauthenticated)", driver.ErrInvalidOption)
	case opts.Verifier != nil && opts.InsecureNoAuthentication:
		return nil, fmt.Errorf("%w: push: NewHandler: Options.Verifier and Options.InsecureNoAuthentication are both set; set one", driver.ErrInvalidOption)
	}
	if v, ok := opts.Verifier.(validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%w: push: NewHandler: %v", driver.ErrInvalidOption, err)
		}
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("%w: push: Options.MaxBodyBytes must not be negative (0 means DefaultMaxBodyBytes), got %d", driver.ErrInvalidOption, opts.MaxBodyBytes)
	}
	opts.MaxBodyBytes = cmp.Or(opts.MaxBodyBytes, DefaultMaxBodyBytes)
	h := &Handler{ep: ep, opts: opts, log: opts.Logger, attempts: attempts.New(0)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// ServeHTTP verifies the caller before it reads a byte of the body, then
// decodes the request, runs the endpoint's pipeline for its event and
// answers: 204 once the event is settled for good, 503 with Retry-After to
// have it retried, 4xx for requests that are not accepted.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "push: only POST is accepted", http.StatusMethodNotAllowed)
		return
	}
	if h.opts.Verifier != nil {
		if err := h.opts.Verifier.Verify(r.Context(), r); err != nil {
			h.log.Warn("push: request not verified", "error", err, "remote", r.RemoteAddr)
			// The body is left unread: the connection is not reused, so the
			// server does not read the rest of it either.
			w.Header().Set("Connection", "close")
			if errors.Is(err, ErrKeysUnavailable) {
				http.Error(w, "push: cannot verify the token now", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, prefixed(err.Error()), http.StatusUnauthorized)
			return
		}
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("push: body over %d bytes", h.opts.MaxBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("push: body over %d bytes", tooBig.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "push: reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := DecodeRequest(r.Header, body, h.opts.Topic)
	if err != nil {
		h.reject(w, r, body, err)
		return
	}
	key := req.Event.Source() + "\x00" + req.Event.ID()
	attempt := req.Attempt
	if attempt <= 0 {
		attempt = h.attempts.Attempt(key)
	}
	d := driver.NewPushDelivery(&req.Event, attempt)
	if req.DecodeError != nil {
		h.ep.Deliver(r.Context(), undecodable{PushDelivery: d, err: req.DecodeError})
	} else {
		h.ep.Deliver(r.Context(), d)
	}
	switch outcome, delay := d.Outcome(); outcome {
	case driver.OutcomeAcked:
		h.attempts.Forget(key)
		w.WriteHeader(http.StatusNoContent)
	case driver.OutcomeNacked:
		h.attempts.Failed(key)
		secs := int64((delay + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		http.Error(w, "push: event not handled; retry", http.StatusServiceUnavailable)
	default:
		http.Error(w, "push: event left unsettled", http.StatusInternalServerError)
	}
}

// undecodable is the pushed delivery of a message that claims to be a
// CloudEvent and is not one (driver.Undecodable): the portable layer
// dead-letters it without running the handler.
type undecodable struct {
	*driver.PushDelivery
	err error
}

func (u undecodable) DecodeError() error { return u.err }

// prefixed puts "push: " before msg once: errors of this package already
// start with it, a Verifier's own errors may not.
func prefixed(msg string) string {
	if strings.HasPrefix(msg, "push: ") {
		return msg
	}
	return "push: " + msg
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	status := http.StatusBadRequest
	var re *RequestError
	if errors.As(err, &re) {
		status = re.Status
	}
	const show = 512
	h.log.Error("push: request rejected", "status", status, "error", err, "contentType", r.Header.Get("Content-Type"),
		"bodyBytes", len(body), "body", string(body[:min(len(body), show)]))
	if h.opts.AcknowledgeMalformed && status == http.StatusBadRequest {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Error(w, err.Error(), status)
}
