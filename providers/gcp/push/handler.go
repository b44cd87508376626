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

// Options configure a Handler. The zero value is valid.
type Options struct {
	// Verifier checks each request before its body is read; nil accepts
	// every request (Cloud Run already checks invokers of services deployed
	// with --no-allow-unauthenticated).
	Verifier Verifier
	// MaxBodyBytes bounds a request body (default DefaultMaxBodyBytes).
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

// NewHandler returns a Handler delivering to ep. Make ep with
// Bus.NewEndpoint or Router.Endpoint.
func NewHandler(ep *crossbus.Endpoint, opts Options) (*Handler, error) {
	if ep == nil {
		return nil, fmt.Errorf("%w: push: NewHandler(nil endpoint)", driver.ErrInvalidOption)
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("%w: push: MaxBodyBytes must not be negative, got %d", driver.ErrInvalidOption, opts.MaxBodyBytes)
	}
	opts.MaxBodyBytes = cmp.Or(opts.MaxBodyBytes, DefaultMaxBodyBytes)
	h := &Handler{ep: ep, opts: opts, log: opts.Logger, attempts: attempts.New(0)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// ServeHTTP decodes the request, runs the endpoint's pipeline for its event
// and answers: 204 once the event is settled for good, 503 with Retry-After
// to have it retried, 4xx for requests that are not accepted.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "push: only POST is accepted", http.StatusMethodNotAllowed)
		return
	}
	if h.opts.Verifier != nil {
		if err := h.opts.Verifier.Verify(r.Context(), r); err != nil {
			h.log.Warn("push: request not verified", "error", err, "remote", r.RemoteAddr)
			if errors.Is(err, ErrKeysUnavailable) {
				http.Error(w, "push: cannot verify the token now", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, prefixed(err.Error()), http.StatusUnauthorized)
			return
		}
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
