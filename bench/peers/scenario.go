// Package peers runs the same publish → handle work through crossbus and
// through its peers (Watermill, Go CDK, raw nats.go), so their per-event
// costs can be compared. cmd/peers prints the comparison table; the Go
// benchmarks in this package give allocation figures for the same scenarios.
package peers

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// The work every scenario does per event: build one event with a fresh id,
// a type and this JSON payload, publish it, and have a handler that decodes
// nothing count it and ack.
const (
	eventType   = "com.example.order.placed"
	eventSource = "/bench/peers"
)

var payload = []byte(`{"order":"o-1","customer":"c-42","amount":1250,"currency":"EUR"}`)

// Config is what every scenario is given.
type Config struct {
	// Window is how many events the publisher may have published but not
	// yet seen handled before it waits (the same for every scenario, so no
	// library is measured with a deeper backlog than another).
	Window int
	// Concurrency is how many handlers may run at once where the library
	// has that knob (crossbus's WithConcurrency, Go CDK's Receive loops).
	Concurrency int
	// Batch is how many events one publish call carries in the NATS
	// scenarios. The default is 1, as in the in-process scenarios, which
	// always publish one event per call: every row then does the same work,
	// and a NATS publish waits for the stream's acknowledgement of its one
	// event before the next is built.
	Batch int
	// Dir holds the embedded NATS server's storage; empty means a new
	// temporary directory.
	Dir string
}

// DefaultConfig is what cmd/peers and the Go benchmarks use unless told
// otherwise.
func DefaultConfig() Config {
	return Config{Window: 1024, Concurrency: 8, Batch: 1}
}

// Runner is an opened scenario: Run(n) publishes n events and returns once
// all of them were handled; it may be called several times.
type Runner interface {
	Run(ctx context.Context, n int) error
	Close(ctx context.Context) error
}

// Scenario is one row of the comparison.
type Scenario struct {
	Name  string // "crossbus/plain", "watermill/router", ...
	Group string // "memory" (in-process) or "nats" (embedded JetStream)
	// What the row runs, for the table's notes.
	Desc string
	Open func(ctx context.Context, cfg Config) (Runner, error)
}

// Scenarios lists every scenario in table order.
func Scenarios() []Scenario {
	return []Scenario{
		{"crossbus/plain", "memory", "mem://, Router, one route, default options (8 handlers)", openCrossbusMem(memPlain)},
		{"crossbus/idempotency", "memory", "plain + WithIdempotency(MemoryIdempotencyStore)", openCrossbusMem(memIdempotency)},
		{"crossbus/ordered", "memory", "plain + WithOrdering, 100 partition keys", openCrossbusMem(memOrdered)},
		{"crossbus/filter", "memory", "plain + WithFilter(TypeIs(type)), matching", openCrossbusMem(memFilter)},
		{"crossbus/retry-default", "memory", "plain + WithRetry(DefaultRetryPolicy()), no failures", openCrossbusMem(memRetry)},
		{"watermill/router", "memory", "GoChannel (default config) + message.Router, no middleware", openWatermillGoChannel(false)},
		{"watermill/router+retry+recoverer", "memory", "GoChannel + Router with middleware.Retry (crossbus's default policy) and middleware.Recoverer", openWatermillGoChannel(true)},
		{"gocdk/mempubsub", "memory", "mempubsub topic + subscription, 8 Receive/Ack loops", openGoCDK},
		{"crossbus/nats", "nats", "providers/nats on the embedded server, Router, default options (8 handlers, prefetch 256)", openCrossbusNATS},
		{"nats.go/jetstream", "nats", "raw nats.go jetstream: PublishMsgAsync with CloudEvents headers and Nats-Msg-Id, wait for its ack; pull Consume (256 buffered), Ack", openRawNATS},
		{"watermill/jetstream", "nats", "watermill-nats/v2 jetstream Publisher/Subscriber (pull Consume, AckAsync) + Router; Nats-Msg-Id set as crossbus does", openWatermillJetStream},
	}
}

// Select returns the scenarios whose name or group matches one of the
// comma-separated patterns (a pattern matches a name it equals, a name it is
// a prefix of followed by "/", or a group); "all" or "" selects every one.
func Select(patterns string) ([]Scenario, error) {
	all := Scenarios()
	if patterns == "" || patterns == "all" {
		return all, nil
	}
	var out []Scenario
	seen := map[string]bool{}
	for _, p := range strings.Split(patterns, ",") {
		p = strings.TrimSpace(p)
		found := false
		for _, s := range all {
			if s.Name == p || s.Group == p || strings.HasPrefix(s.Name, p+"/") {
				found = true
				if !seen[s.Name] {
					seen[s.Name] = true
					out = append(out, s)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("no scenario matches %q", p)
		}
	}
	return out, nil
}

// Lookup returns the scenario with exactly that name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func tempDir(cfg Config) (dir string, cleanup func(), err error) {
	if cfg.Dir != "" {
		return cfg.Dir, func() {}, nil
	}
	dir, err = os.MkdirTemp("", "peers-nats-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}
