package servicebus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// dialProbeTimeout bounds the connection attempt that explains a failure.
const dialProbeTimeout = time.Second

// probeReuse is how long a probe's answer explains later failures.
const probeReuse = 5 * time.Second

// endpoint is the AMQP address ("host:port") the SDK connects to for o, or
// "" when the provider was given a client.
func (o *Options) endpoint() string {
	host, emulator := "", false
	switch {
	case o.ConnectionString != "":
		host = endpointHost(o.ConnectionString)
		emulator = strings.Contains(strings.ToLower(o.ConnectionString), "usedevelopmentemulator=true")
	case o.Namespace != "":
		host = o.Namespace
	}
	if host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if emulator {
		return net.JoinHostPort(host, "5672")
	}
	return net.JoinHostPort(host, "5671")
}

// transportProbe explains failures that say nothing by themselves (the
// caller's deadline passed while the SDK retried): it connects to the
// namespace's endpoint and reports what the network answered. The SDK keeps
// the errors of its own connection attempts to itself (it retries, and
// returns only the context's error when the deadline comes first).
type transportProbe struct {
	endpoint string

	mu     sync.Mutex
	at     time.Time
	result error // nil: the endpoint accepted a TCP connection
}

// check dials the endpoint (or reuses a recent answer).
func (t *transportProbe) check() (time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.at.IsZero() && time.Since(t.at) < probeReuse {
		return t.at, t.result
	}
	d := net.Dialer{Timeout: dialProbeTimeout}
	c, err := d.Dial("tcp", t.endpoint)
	if err == nil {
		_ = c.Close()
	}
	t.result, t.at = err, time.Now()
	return t.at, t.result
}

// explain adds the endpoint and what connecting to it answers to an error
// that says little by itself: the context's, or the SDK's connection
// failures. Other errors are returned as they are.
func (t *transportProbe) explain(err error) error {
	if err == nil || t == nil || t.endpoint == "" {
		return err
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !hasCode(err, azservicebus.CodeConnectionLost) {
		return err
	}
	at, dialErr := t.check()
	return &TransportError{Err: err, Endpoint: t.endpoint, Dial: dialErr, DialAt: at}
}

// TransportError is an operation that failed without the service saying
// why (the caller's deadline passed while the SDK retried, or the
// connection was lost), with what the provider found out about the
// connection: the namespace's AMQP endpoint and the error of connecting to
// it, if connecting failed. It wraps the operation's error, so
// errors.Is(err, context.DeadlineExceeded) still holds.
type TransportError struct {
	Err      error     // the operation's error
	Endpoint string    // "host:port" of the namespace's AMQP endpoint
	Dial     error     // connecting to Endpoint; nil when it accepted a connection
	DialAt   time.Time // when the connection was tried
}

func (e *TransportError) Error() string {
	if e.Dial != nil {
		return fmt.Sprintf("%v (endpoint %s; last transport error: %v)", e.Err, e.Endpoint, e.Dial)
	}
	return fmt.Sprintf("%v (endpoint %s accepts connections: the service did not answer in time)", e.Err, e.Endpoint)
}

// Unwrap returns the operation's error.
func (e *TransportError) Unwrap() error { return e.Err }
