// Package topology describes the routes of a crossbus Router — which topic
// each subscription reads, which handler runs, with which filter, retry
// policy, dead-letter target, ordering, concurrency and load controls — and
// draws them as JSON, Mermaid or Graphviz DOT. Router.Topology returns a
// Topology; Router.Counters returns the live Counters of its routes.
//
// The package has no dependency on the rest of crossbus, so tools (the ops
// package, the crossbus command, a CI check that diffs a service's
// topology) can read and render a topology saved as JSON.
package topology

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Topology is the set of routes of one router.
type Topology struct {
	// Service names the service the routes belong to, when the caller
	// set it (Router.Topology leaves it empty).
	Service string  `json:"service,omitempty"`
	Routes  []Route `json:"routes"`
}

// Route describes one route: a subscription of a topic, its handler and the
// options that shape its delivery.
type Route struct {
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	// Handler is the handler's function name as the Go runtime reports it
	// ("main.sendSMS", "main.(*Mailer).Send-fm"), or its type when it is
	// not a function.
	Handler string `json:"handler"`
	// Batch is true for batch routes (Router.HandleBatch).
	Batch bool `json:"batch,omitempty"`
	// Filter is the route's event pattern (EventBridge syntax, canonical
	// JSON), "" without a filter. FilterFunc is true when the route has a
	// filter that is a function, which has no JSON form.
	Filter     string `json:"filter,omitempty"`
	FilterFunc bool   `json:"filterFunc,omitempty"`
	Retry      Retry  `json:"retry"`
	// DeadLetterTopic is the route's portable dead-letter topic; "" means
	// the provider's native dead-letter queue of the subscription.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	Ordered         bool   `json:"ordered,omitempty"`
	Concurrency     int    `json:"concurrency"`
	Prefetch        int    `json:"prefetch,omitempty"`
	// Timeout bounds each handler call ("" for none).
	Timeout    string     `json:"timeout,omitempty"`
	Idempotent bool       `json:"idempotent,omitempty"`
	RateLimit  *RateLimit `json:"rateLimit,omitempty"`
	Breaker    *Breaker   `json:"breaker,omitempty"`
	BatchSize  *BatchSize `json:"batchSize,omitempty"`
}

// Retry is a route's retry policy; durations are Go duration strings.
type Retry struct {
	MaxAttempts    int     `json:"maxAttempts"`
	InitialBackoff string  `json:"initialBackoff"`
	MaxBackoff     string  `json:"maxBackoff"`
	Multiplier     float64 `json:"multiplier"`
	Jitter         float64 `json:"jitter"`
}

// RateLimit is a route's rate limit; Shared is true when the limiter is
// shared with other routes (WithRateLimiter).
type RateLimit struct {
	EventsPerSecond float64 `json:"eventsPerSecond"`
	Burst           int     `json:"burst"`
	Shared          bool    `json:"shared,omitempty"`
}

// Breaker is a route's circuit breaker policy.
type Breaker struct {
	ConsecutiveFailures int     `json:"consecutiveFailures,omitempty"`
	FailureRate         float64 `json:"failureRate,omitempty"`
	MinRequests         int     `json:"minRequests,omitempty"`
	Window              string  `json:"window,omitempty"`
	OpenFor             string  `json:"openFor,omitempty"`
	// State is the breaker's state while the route runs ("closed",
	// "open", "half-open"), "" otherwise.
	State string `json:"state,omitempty"`
}

// BatchSize bounds the batches of a batch route.
type BatchSize struct {
	MaxCount int    `json:"maxCount"`
	MaxWait  string `json:"maxWait"`
}

// Counters are the live counts of one route since its router was made:
// deliveries handled (the handler returned nil), failed attempts, retries
// scheduled, events dead-lettered, and handlers running now. Lag is the
// number of events waiting in the subscription where the provider reports
// it (nil elsewhere).
type Counters struct {
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	Running      bool   `json:"running"`
	Handled      int64  `json:"handled"`
	Failed       int64  `json:"failed"`
	Retried      int64  `json:"retried"`
	DeadLettered int64  `json:"deadLettered"`
	InFlight     int64  `json:"inFlight"`
	Lag          *int64 `json:"lag,omitempty"`
}

// Parse reads a topology written by WriteJSON (or json.Marshal).
func Parse(r io.Reader) (Topology, error) {
	var t Topology
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Topology{}, fmt.Errorf("topology: %w", err)
	}
	return t, nil
}

// WriteJSON writes the topology as indented JSON.
func (t Topology) WriteJSON(w io.Writer) error {
	if t.Routes == nil {
		t.Routes = []Route{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// Topics returns the topics the routes read, and the dead-letter topics they
// write, sorted and without repeats.
func (t Topology) Topics() []string {
	var out []string
	for _, r := range t.Routes {
		out = append(out, r.Topic)
		if r.DeadLetterTopic != "" {
			out = append(out, r.DeadLetterTopic)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Find returns the route of subscription on topic.
func (t Topology) Find(topic, subscription string) (Route, bool) {
	for _, r := range t.Routes {
		if r.Topic == topic && r.Subscription == subscription {
			return r, true
		}
	}
	return Route{}, false
}

// Summary is a short description of the route's options, for diagrams and
// listings: "retry 5, concurrency 8, ordered, 10/s".
func (r Route) Summary() string {
	var parts []string
	parts = append(parts, "retry "+strconv.Itoa(r.Retry.MaxAttempts))
	parts = append(parts, "concurrency "+strconv.Itoa(r.Concurrency))
	if r.Ordered {
		parts = append(parts, "ordered")
	}
	if r.Batch && r.BatchSize != nil {
		parts = append(parts, "batch "+strconv.Itoa(r.BatchSize.MaxCount))
	}
	if r.RateLimit != nil {
		parts = append(parts, strconv.FormatFloat(r.RateLimit.EventsPerSecond, 'g', -1, 64)+"/s")
	}
	if r.Breaker != nil {
		parts = append(parts, "breaker")
	}
	if r.Idempotent {
		parts = append(parts, "idempotent")
	}
	if r.Filter != "" || r.FilterFunc {
		parts = append(parts, "filtered")
	}
	return strings.Join(parts, ", ")
}

// ShortHandler is the handler's name without its package path
// ("github.com/acme/svc/billing.charge" becomes "billing.charge").
func (r Route) ShortHandler() string {
	h := r.Handler
	if i := strings.LastIndexByte(h, '/'); i >= 0 {
		h = h[i+1:]
	}
	return h
}
