// Package functions serves crossbus endpoints as an Azure Functions custom
// handler: the Functions host runs the process, listens to a trigger, and
// POSTs each invocation to http://127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT/<FunctionName>
// as {"Data": {...}, "Metadata": {...}}. Handler decodes the trigger's
// payload into CloudEvents, runs each through its crossbus.Endpoint (the same
// filters, middleware, idempotency, retry policy and dead-lettering as any
// route) and answers with {"Outputs":{},"Logs":[...],"ReturnValue":null}.
//
// Supported triggers:
//
//   - serviceBusTrigger: one message (or a batch, with cardinality "many").
//     A message carrying CloudEvents attributes as application properties
//     (cloudEvents_ or cloudEvents: prefix, the AMQP binding) or a
//     structured CloudEvent body (content type application/cloudevents+json)
//     becomes that event; any other message is mapped by the rule of the
//     Service Bus provider (providers/azure/servicebus EventFromMessage), so
//     a handler sees the same event whether the message is pulled or
//     pushed. The attempt is the message's DeliveryCount. A message the
//     host passes without MessageId and SequenceNumber gets the id
//     "<Entity>/sha256-<digest>", a digest of its enqueued time, session,
//     content type, subject, properties and body (identical messages of
//     one batch are numbered "#2", "#3", ...), so the idempotency
//     middleware tells messages apart and still recognises a redelivery.
//   - eventGridTrigger: one event in either schema (see
//     eventgrid.DecodeEvent). The Functions host does not pass Event Grid's
//     delivery count on, so the attempt is 1 unless the function has a retry
//     policy (Metadata.RetryContext).
//
// Outcomes: success, a filtered event, or a dead-lettered one (a permanent
// failure or the last attempt, published to the route's dead-letter topic)
// answer 200; an event to retry answers 500, which fails the invocation so
// the trigger redelivers (Service Bus abandons the message, Event Grid
// retries its push). A message or event that claims to be a CloudEvent and
// is not a valid one is delivered as undecodable (driver.Undecodable):
// the portable layer dead-letters its placeholder to the route's
// dead-letter topic without running the handler, and the invocation
// succeeds, so one bad message does not hold back the others of a batch.
// An invocation that does not decode at all (not the host's JSON, no
// trigger data, a body that is not base64 where DataType says binary)
// answers 400, which fails the invocation, so Service Bus eventually moves
// the message to its own dead-letter queue.
//
// # Authentication
//
// A Handler authenticates its callers unless told otherwise: NewHandler
// refuses Options that set neither Auth nor InsecureNoAuthentication. The
// Functions host starts the custom handler and invokes it over the
// loopback interface (http://127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT) with
// no credential of its own, so the custom-handler model's authentication
// is the network: listen on the loopback interface only (ListenAddress)
// and accept only loopback peers,
//
//	h, err := functions.NewHandler(functions.Options{Auth: functions.LoopbackOnly{}})
//	...
//	log.Fatal(http.ListenAndServe(functions.ListenAddress(), h))
//
// When something else posts the invocations (a proxy that adds a header, a
// test harness), an eventgrid.SharedSecret fits: Options{Auth:
// eventgrid.SharedSecret{Secret: ...}}. Callers are checked before a byte
// of the body is read: a refused one gets 403 (not a loopback peer) or 401
// (no valid secret). InsecureNoAuthentication accepts every caller; set it
// only for local development.
package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
)

// Trigger is a function's trigger type.
type Trigger int

const (
	// ServiceBus is the serviceBusTrigger binding.
	ServiceBus Trigger = iota + 1
	// EventGrid is the eventGridTrigger binding.
	EventGrid
)

// String returns the trigger's binding type, as function.json names it.
func (t Trigger) String() string {
	switch t {
	case ServiceBus:
		return "serviceBusTrigger"
	case EventGrid:
		return "eventGridTrigger"
	}
	return fmt.Sprintf("Trigger(%d)", int(t))
}

// Function is one function of the app, as its function.json declares it.
type Function struct {
	// Name is the function's name (its folder); the host posts to /Name.
	Name string
	// Trigger is the trigger binding's type.
	Trigger Trigger
	// Binding is the trigger binding's name in function.json.
	Binding string
	// Endpoint runs the events (see crossbus Router.Endpoint).
	Endpoint *crossbus.Endpoint
	// Many is set for "cardinality": "many" (Service Bus batches).
	Many bool
	// DataType is the binding's "dataType": "" or "string" for text
	// bodies, "binary" when the host sends the body base64-encoded.
	DataType string
	// Entity is the queue or topic the Service Bus trigger listens to
	// (queueName or topicName in function.json). Messages without
	// CloudEvents attributes get the source "/<Entity>", as the Service Bus
	// provider maps them ("/servicebus" when empty).
	Entity string
}

// Options configure a Handler.
type Options struct {
	// Auth authenticates every invocation before its body is read:
	// LoopbackOnly for the Functions host (see the package documentation),
	// or an eventgrid.SharedSecret. NewHandler refuses Options with neither
	// Auth nor InsecureNoAuthentication, and an Auth that would refuse
	// every request (an empty secret).
	Auth eventgrid.Authenticator
	// InsecureNoAuthentication accepts every caller without checking who
	// it is: anyone who can reach the port can inject events. Set it only
	// for local development. It cannot be combined with Auth.
	InsecureNoAuthentication bool
	// MaxBodyBytes bounds an invocation body: 0 means DefaultMaxBodyBytes,
	// a negative value is refused by NewHandler. An invocation over the
	// limit gets 413 and is not read further (not at all when its
	// Content-Length says so).
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes bounds an invocation body unless Options.MaxBodyBytes
// says otherwise: a batch of Service Bus messages, base64-encoded by the
// host, with their metadata.
const DefaultMaxBodyBytes = 8 << 20

// ErrNotLoopback is matched by the error of LoopbackOnly for a caller that
// is not on the loopback interface; the Handler answers it 403.
var ErrNotLoopback = errors.New("functions: caller is not on the loopback interface")

// LoopbackOnly is the Authenticator of the Functions custom-handler model:
// the Functions host runs the handler next to itself and invokes it over
// the loopback interface, so a caller whose address (the connection's
// peer, not a header) is not a loopback address is refused. Pair it with
// ListenAddress, which listens on the loopback interface only. Behind a
// reverse proxy on the same machine every caller is a loopback peer: use a
// secret there instead.
type LoopbackOnly struct{}

// Authenticate implements eventgrid.Authenticator.
func (LoopbackOnly) Authenticate(r *http.Request) error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotLoopback, r.RemoteAddr)
}

// Handler is the custom handler's http.Handler. Make it with NewHandler and
// register functions before serving.
type Handler struct {
	auth     eventgrid.Authenticator
	maxBytes int64

	mu  sync.RWMutex
	fns map[string]*Function
}

// NewHandler returns a Handler with no functions. It refuses Options that
// set neither Auth nor InsecureNoAuthentication (or both), an Auth that
// would refuse every request, and a negative MaxBodyBytes.
func NewHandler(opts Options) (*Handler, error) {
	switch {
	case opts.Auth == nil && !opts.InsecureNoAuthentication:
		return nil, fmt.Errorf("%w: functions: NewHandler: no Options.Auth: set one (functions.LoopbackOnly{} for the Functions host, "+
			"or eventgrid.SharedSecret{Secret: ...}), or set Options.InsecureNoAuthentication to accept every caller "+
			"(local development)", driver.ErrInvalidOption)
	case opts.Auth != nil && opts.InsecureNoAuthentication:
		return nil, fmt.Errorf("%w: functions: NewHandler: Options.Auth and Options.InsecureNoAuthentication are both set; set one", driver.ErrInvalidOption)
	}
	if v, ok := opts.Auth.(interface{ Validate() error }); ok { // eventgrid.SharedSecret, BearerToken
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%w: functions: NewHandler: Options.Auth: %v", driver.ErrInvalidOption, err)
		}
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("%w: functions: Options.MaxBodyBytes must not be negative (0 means DefaultMaxBodyBytes), got %d", driver.ErrInvalidOption, opts.MaxBodyBytes)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Handler{auth: opts.Auth, maxBytes: opts.MaxBodyBytes, fns: map[string]*Function{}}, nil
}

// Register adds a function. It reports missing or inconsistent fields.
func (h *Handler) Register(f Function) error {
	switch {
	case f.Name == "" || strings.ContainsAny(f.Name, "/?#"):
		return fmt.Errorf("%w: functions: function name %q must be non-empty and a single path segment", driver.ErrInvalidOption, f.Name)
	case f.Trigger != ServiceBus && f.Trigger != EventGrid:
		return fmt.Errorf("%w: functions: function %q: Trigger must be ServiceBus or EventGrid", driver.ErrInvalidOption, f.Name)
	case f.Binding == "":
		return fmt.Errorf("%w: functions: function %q: Binding (the trigger's name in function.json) is empty", driver.ErrInvalidOption, f.Name)
	case f.Endpoint == nil:
		return fmt.Errorf("%w: functions: function %q has no Endpoint", driver.ErrInvalidOption, f.Name)
	case f.DataType != "" && f.DataType != "string" && f.DataType != "binary":
		return fmt.Errorf("%w: functions: function %q: DataType %q: want \"\", \"string\" or \"binary\"", driver.ErrInvalidOption, f.Name, f.DataType)
	case f.Many && f.Trigger != ServiceBus:
		return fmt.Errorf("%w: functions: function %q: cardinality many is supported for Service Bus triggers", driver.ErrInvalidOption, f.Name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	key := strings.ToLower(f.Name)
	if _, dup := h.fns[key]; dup {
		return fmt.Errorf("%w: functions: function %q registered twice", driver.ErrInvalidOption, f.Name)
	}
	h.fns[key] = &f
	return nil
}

// ListenAddress is the address the Functions host invokes the handler at:
// "127.0.0.1:" + $FUNCTIONS_CUSTOMHANDLER_PORT, or "127.0.0.1:8080" outside
// the host. It is on the loopback interface only, so nothing but the
// processes of the machine (the host's) can reach the handler.
func ListenAddress() string {
	if p := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"); p != "" {
		return "127.0.0.1:" + p
	}
	return "127.0.0.1:8080"
}

// Response is the body a custom handler returns to the Functions host.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// ServeHTTP implements http.Handler. The caller is authenticated before
// anything else, and before a byte of the body is read.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if h.auth != nil {
		if err := h.auth.Authenticate(r); err != nil {
			// The body is left unread: the connection is not reused, so
			// the server does not read the rest of it either.
			rw.Header().Set("Connection", "close")
			switch {
			case errors.Is(err, ErrNotLoopback):
				respond(rw, http.StatusForbidden, []string{"crossbus: invocations come from the loopback interface only"})
			case errors.Is(err, eventgrid.ErrKeysUnavailable):
				respond(rw, http.StatusServiceUnavailable, []string{"crossbus: cannot authenticate the invocation now"})
			default:
				respond(rw, http.StatusUnauthorized, []string{"crossbus: invocation not authenticated"})
			}
			return
		}
	}
	name := strings.Trim(r.URL.Path, "/")
	h.mu.RLock()
	f := h.fns[strings.ToLower(name)]
	h.mu.RUnlock()
	if f == nil {
		http.Error(rw, fmt.Sprintf("no function %q", name), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "the Functions host invokes with POST", http.StatusMethodNotAllowed)
		return
	}
	tooLarge := []string{fmt.Sprintf("crossbus: invocation over %d bytes", h.maxBytes)}
	if r.ContentLength > h.maxBytes {
		rw.Header().Set("Connection", "close")
		respond(rw, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, h.maxBytes))
	if err != nil {
		var over *http.MaxBytesError
		if errors.As(err, &over) {
			respond(rw, http.StatusRequestEntityTooLarge, tooLarge)
			return
		}
		respond(rw, http.StatusBadRequest, []string{"crossbus: cannot read the invocation: " + err.Error()})
		return
	}
	deliveries, err := Decode(f, body)
	if err != nil {
		respond(rw, http.StatusBadRequest, []string{err.Error()})
		return
	}
	status, logs := run(r.Context(), f, deliveries)
	respond(rw, status, logs)
}

// run delivers each event in order and returns the invocation's status.
func run(ctx context.Context, f *Function, ds []Invocation) (int, []string) {
	status := http.StatusOK
	logs := make([]string, 0, len(ds))
	for _, in := range ds {
		d, delivery := eventgrid.PushDelivery(in.Event, in.Attempt, in.DecodeError)
		f.Endpoint.Deliver(ctx, delivery)
		o, delay := d.Outcome()
		line := fmt.Sprintf("crossbus: event %q (%s) attempt %d: %v", in.Event.ID(), in.Event.Type(), in.Attempt, o)
		if o != driver.OutcomeAcked {
			status = http.StatusInternalServerError
			line += fmt.Sprintf("; retry (policy backoff %v)", delay)
		}
		logs = append(logs, line)
	}
	return status, logs
}

func respond(rw http.ResponseWriter, status int, logs []string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(Response{Outputs: map[string]any{}, Logs: logs})
}
