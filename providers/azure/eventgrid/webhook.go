package eventgrid

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Origin is the WebHook-Request-Origin Event Grid sends in the CloudEvents
// abuse-protection handshake and with every CloudEvents delivery.
const Origin = "eventgrid.azure.net"

// DefaultMaxBodyBytes bounds a push request body unless
// WebhookOptions.MaxBodyBytes says otherwise. Event Grid batches are at
// most 1 MiB; the margin covers other senders.
const DefaultMaxBodyBytes = 4 << 20

// WebhookOptions configure a Webhook. A Webhook authenticates its callers
// unless told otherwise: set Auth, or set InsecureNoAuthentication where
// something in front of the Webhook already authenticates them.
type WebhookOptions struct {
	// Auth authenticates every request before its body is read: a refused
	// request gets 401, which Event Grid does not retry, and not a byte of
	// its body is read. SharedSecret (a secret in the endpoint URL or a
	// delivery header) or BearerToken with EntraID (Microsoft Entra ID
	// delivery authentication). NewWebhook refuses options with neither
	// Auth nor InsecureNoAuthentication, and an Auth that would refuse
	// every request (an empty secret, a bearer token without verifier).
	Auth Authenticator
	// InsecureNoAuthentication accepts every caller without checking who
	// it is. Set it only where something in front of the Webhook
	// authenticates callers (an API gateway, App Service authentication)
	// or for local development; anywhere else anyone who can reach the URL
	// can inject events. It cannot be combined with Auth.
	InsecureNoAuthentication bool
	// AllowUnauthenticatedHandshake exempts the validation handshakes (the
	// CloudEvents OPTIONS request, and a POST marked "aeg-event-type:
	// SubscriptionValidation" whose body is a SubscriptionValidationEvent)
	// from Auth, for secrets sent as delivery headers, which the handshake
	// may not carry. Such a POST is read up to 64 KiB and answered 401
	// unless it is a validation; deliveries are always authenticated.
	AllowUnauthenticatedHandshake bool
	// AllowedOrigins are the WebHook-Request-Origin values the CloudEvents
	// handshake grants (default: Event Grid's, "eventgrid.azure.net").
	// "*" grants every origin.
	AllowedOrigins []string
	// AllowedRate is the WebHook-Allowed-Rate granted, in requests per
	// minute (0 grants "*", no limit).
	AllowedRate int
	// MaxBodyBytes bounds a request body: 0 means DefaultMaxBodyBytes, a
	// negative value is refused by NewWebhook. A request over the limit
	// gets 413 and is not read further (not at all when its Content-Length
	// says so).
	MaxBodyBytes int64
	// Concurrency is how many events of one batch are handled at once
	// (default 1: one after another, in delivery order).
	Concurrency int
}

// maxHandshakeBytes bounds the body of an unauthenticated validation
// handshake (AllowUnauthenticatedHandshake); a SubscriptionValidationEvent
// is well under 1 KiB.
const maxHandshakeBytes = 64 << 10

// Webhook is the http.Handler for Event Grid webhook event subscriptions
// (basic topics, system topics, domains and namespace push subscriptions).
// It authenticates each request (WebhookOptions.Auth) before reading its
// body, answers the validation handshakes, decodes each push (see
// DecodePush) and runs every event through a crossbus.Endpoint, so
// filters, middleware,
// idempotency, the retry policy and dead-lettering behave as for pulled
// events. The attempt number is Event Grid's aeg-delivery-count header + 1.
//
// Responses, chosen for how Event Grid treats them:
//
//   - 200: every event was handled, filtered out, or (after a permanent
//     failure or the last attempt) dead-lettered to the route's dead-letter
//     topic and acknowledged;
//   - 503 with Retry-After: at least one event is to be retried. Event Grid
//     retries the whole request after 30 s or more, so the events of a
//     batch that succeeded run again: make handlers idempotent (the
//     idempotency middleware does) or set the subscription's max events per
//     batch to 1;
//   - 400: the payload does not decode (Event Grid dead-letters at once).
//     In a batch, an event that does not decode does not refuse the others:
//     it is delivered as undecodable (driver.Undecodable), and the
//     portable layer dead-letters its placeholder (UndecodableEvent) to the
//     route's dead-letter topic without running the handler;
//   - 401: authentication failed (not retried), answered before a byte of
//     the body is read; 503 when the authenticator cannot fetch its keys;
//   - 413: body over MaxBodyBytes, answered without reading further.
type Webhook struct {
	ep   *crossbus.Endpoint
	opts WebhookOptions
}

// NewWebhook returns a Webhook that delivers to ep (see Router.Endpoint and
// Bus.NewEndpoint). It refuses options that set neither Auth nor
// InsecureNoAuthentication (or both), an Auth that would refuse every
// request, and negative MaxBodyBytes, AllowedRate or Concurrency.
func NewWebhook(ep *crossbus.Endpoint, opts WebhookOptions) (*Webhook, error) {
	if ep == nil {
		return nil, fmt.Errorf("%w: eventgrid: NewWebhook needs an endpoint", driver.ErrInvalidOption)
	}
	switch {
	case opts.Auth == nil && !opts.InsecureNoAuthentication:
		return nil, fmt.Errorf("%w: eventgrid: NewWebhook: no WebhookOptions.Auth: set one (eventgrid.SharedSecret{Secret: ...}, "+
			"or eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(tenantID, audience)}), or set "+
			"WebhookOptions.InsecureNoAuthentication to accept unauthenticated callers (local development, "+
			"or behind something that authenticates them)", driver.ErrInvalidOption)
	case opts.Auth != nil && opts.InsecureNoAuthentication:
		return nil, fmt.Errorf("%w: eventgrid: NewWebhook: WebhookOptions.Auth and WebhookOptions.InsecureNoAuthentication are both set; set one", driver.ErrInvalidOption)
	}
	if err := validate(opts.Auth); err != nil {
		return nil, fmt.Errorf("%w: eventgrid: NewWebhook: WebhookOptions.Auth: %v", driver.ErrInvalidOption, err)
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("%w: eventgrid: WebhookOptions.MaxBodyBytes must not be negative (0 means DefaultMaxBodyBytes), got %d", driver.ErrInvalidOption, opts.MaxBodyBytes)
	}
	if opts.AllowedRate < 0 {
		return nil, fmt.Errorf("%w: eventgrid: WebhookOptions.AllowedRate must not be negative, got %d", driver.ErrInvalidOption, opts.AllowedRate)
	}
	if opts.Concurrency < 0 {
		return nil, fmt.Errorf("%w: eventgrid: WebhookOptions.Concurrency must not be negative, got %d", driver.ErrInvalidOption, opts.Concurrency)
	}
	if len(opts.AllowedOrigins) == 0 {
		opts.AllowedOrigins = []string{Origin}
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	opts.Concurrency = cmp.Or(opts.Concurrency, 1)
	return &Webhook{ep: ep, opts: opts}, nil
}

// ServeHTTP implements http.Handler.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodOptions:
		w.handshake(rw, r)
	case http.MethodPost:
		w.deliver(rw, r)
	default:
		rw.Header().Set("Allow", "POST, OPTIONS")
		http.Error(rw, "Event Grid pushes with POST (and OPTIONS for the handshake)", http.StatusMethodNotAllowed)
	}
}

// authenticate runs Auth; nil without one (InsecureNoAuthentication).
func (w *Webhook) authenticate(r *http.Request) error {
	if w.opts.Auth == nil {
		return nil
	}
	return w.opts.Auth.Authenticate(r)
}

// refuse answers a request that was not authenticated, without reading its
// body: the connection is closed so the server does not read it either.
func refuse(rw http.ResponseWriter, err error) {
	rw.Header().Set("Connection", "close")
	if errors.Is(err, ErrKeysUnavailable) {
		http.Error(rw, "cannot authenticate the request now", http.StatusServiceUnavailable)
		return
	}
	rw.Header().Set("WWW-Authenticate", "Bearer")
	http.Error(rw, "unauthorized", http.StatusUnauthorized)
}

// tooLarge answers a request whose body is over limit, without reading
// further.
func tooLarge(rw http.ResponseWriter, limit int64) {
	rw.Header().Set("Connection", "close")
	http.Error(rw, fmt.Sprintf("request body over %d bytes", limit), http.StatusRequestEntityTooLarge)
}

// handshake answers the CloudEvents webhook abuse-protection request.
func (w *Webhook) handshake(rw http.ResponseWriter, r *http.Request) {
	if !w.opts.AllowUnauthenticatedHandshake {
		if err := w.authenticate(r); err != nil {
			refuse(rw, err)
			return
		}
	}
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		rw.Header().Set("Allow", "POST, OPTIONS")
		rw.WriteHeader(http.StatusOK)
		return
	}
	if !slices.Contains(w.opts.AllowedOrigins, origin) && !slices.Contains(w.opts.AllowedOrigins, "*") {
		http.Error(rw, "origin not allowed: "+origin, http.StatusForbidden)
		return
	}
	rate := "*"
	if w.opts.AllowedRate > 0 {
		rate = strconv.Itoa(w.opts.AllowedRate)
	}
	rw.Header().Set("Allow", "POST, OPTIONS")
	rw.Header().Set("WebHook-Allowed-Origin", origin)
	rw.Header().Set("WebHook-Allowed-Rate", rate)
	rw.WriteHeader(http.StatusOK)
}

func (w *Webhook) deliver(rw http.ResponseWriter, r *http.Request) {
	// Authenticate first, from the URL and headers alone. With
	// AllowUnauthenticatedHandshake, a request that says it is a
	// validation handshake is read (to 64 KiB) to see whether it is one.
	handshakeOnly := false
	if err := w.authenticate(r); err != nil {
		if !w.opts.AllowUnauthenticatedHandshake || !strings.EqualFold(r.Header.Get("aeg-event-type"), "SubscriptionValidation") {
			refuse(rw, err)
			return
		}
		handshakeOnly = true
	}
	limit := w.opts.MaxBodyBytes
	if handshakeOnly {
		limit = min(limit, maxHandshakeBytes)
	}
	if r.ContentLength > limit {
		if handshakeOnly {
			refuse(rw, ErrUnauthenticated)
			return
		}
		tooLarge(rw, limit)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, limit))
	if err != nil {
		var over *http.MaxBytesError
		switch {
		case errors.As(err, &over) && handshakeOnly:
			refuse(rw, ErrUnauthenticated)
		case errors.As(err, &over):
			tooLarge(rw, limit)
		default:
			http.Error(rw, "cannot read request body", http.StatusBadRequest)
		}
		return
	}
	push, derr := DecodePush(r.Header, body)
	if handshakeOnly && (derr != nil || push.ValidationCode == "") {
		refuse(rw, ErrUnauthenticated) // not a handshake: the exemption does not apply
		return
	}
	if derr != nil {
		http.Error(rw, derr.Error(), http.StatusBadRequest)
		return
	}
	if push.ValidationCode != "" {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]string{"validationResponse": push.ValidationCode})
		return
	}
	attempt := 1
	if n, err := strconv.Atoi(r.Header.Get("aeg-delivery-count")); err == nil && n >= 0 {
		attempt = n + 1
	}
	retry, delay := w.dispatch(r, push, attempt)
	if retry {
		rw.Header().Set("Retry-After", strconv.Itoa(int((delay+time.Second-1)/time.Second)))
		http.Error(rw, "retry later", http.StatusServiceUnavailable)
		return
	}
	rw.WriteHeader(http.StatusOK)
}

// dispatch runs every event and reports whether any is to be retried, with
// the longest delay the retry policy asked for. Events of the batch that did
// not decode are delivered as undecodable, for the portable layer to
// dead-letter.
func (w *Webhook) dispatch(r *http.Request, push Push, attempt int) (bool, time.Duration) {
	var mu sync.Mutex
	retry, delay := false, time.Duration(0)
	one := func(i int) {
		var decodeErr error
		if push.DecodeErrors != nil {
			decodeErr = push.DecodeErrors[i]
		}
		d, delivery := PushDelivery(push.Events[i], attempt, decodeErr)
		w.ep.Deliver(r.Context(), delivery)
		o, dl := d.Outcome()
		if o == driver.OutcomeAcked {
			return
		}
		mu.Lock()
		retry, delay = true, max(delay, dl)
		mu.Unlock()
	}
	if w.opts.Concurrency == 1 || len(push.Events) == 1 {
		for i := range push.Events {
			one(i)
		}
		return retry, delay
	}
	sem := make(chan struct{}, w.opts.Concurrency)
	var wg sync.WaitGroup
	for i := range push.Events {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			one(i)
		}()
	}
	wg.Wait()
	return retry, delay
}
