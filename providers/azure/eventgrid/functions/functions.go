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
//     pushed. The attempt is the message's DeliveryCount.
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
package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// Handler is the custom handler's http.Handler. Register functions before
// serving.
type Handler struct {
	mu  sync.RWMutex
	fns map[string]*Function
}

// NewHandler returns a Handler with no functions.
func NewHandler() *Handler { return &Handler{fns: map[string]*Function{}} }

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

// ListenAddress is the address the Functions host expects the handler on:
// ":" + $FUNCTIONS_CUSTOMHANDLER_PORT, or ":8080" outside the host.
func ListenAddress() string {
	if p := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"); p != "" {
		return ":" + p
	}
	return ":8080"
}

// MaxInvocationBytes bounds an invocation request body.
const MaxInvocationBytes = 8 << 20

// Response is the body a custom handler returns to the Functions host.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
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
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxInvocationBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			respond(rw, http.StatusRequestEntityTooLarge, []string{fmt.Sprintf("crossbus: invocation over %d bytes", MaxInvocationBytes)})
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
