package gcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crossbus/crossbus/driver"
)

// grpcCode returns the gRPC status code of err (codes.OK for nil,
// codes.Unknown for errors without a status).
func grpcCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code()
	}
	return status.Code(err)
}

// topicError wraps an error from an operation on topic with the crossbus
// sentinel it means.
func topicError(op, topic string, err error) error {
	switch {
	case grpcCode(err) == codes.NotFound:
		return fmt.Errorf("gcp: %s topic %q: %w: %w", op, topic, driver.ErrTopicNotFound, err)
	case isUnauthorized(err):
		return fmt.Errorf("gcp: %s topic %q: %w: %w", op, topic, driver.ErrUnauthorized, err)
	case errors.Is(err, pubsub.ErrOversizedMessage):
		return fmt.Errorf("gcp: %s topic %q: %w: %w", op, topic, driver.ErrTooLarge, err)
	case errors.Is(err, pubsub.ErrPublisherStopped):
		return fmt.Errorf("gcp: %s topic %q: %w: %w", op, topic, driver.ErrClosed, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("gcp: %s topic %q: %w", op, topic, err)
	}
	return fmt.Errorf("gcp: %s topic %q: %w", op, topic, err)
}

// subscriptionError wraps an error from an operation on sub with the
// crossbus sentinel it means: NotFound (the subscription was deleted, or
// never existed) is ErrSubscriptionNotFound, PermissionDenied and
// Unauthenticated are ErrUnauthorized. A receive error wrapping either stops
// the subscription; every other code is retried by the portable layer.
func subscriptionError(op, sub string, err error) error {
	switch {
	case grpcCode(err) == codes.NotFound:
		return fmt.Errorf("gcp: %s subscription %q: %w: %w", op, sub, driver.ErrSubscriptionNotFound, err)
	case isUnauthorized(err):
		return fmt.Errorf("gcp: %s subscription %q: %w: %w", op, sub, driver.ErrUnauthorized, err)
	}
	return fmt.Errorf("gcp: %s subscription %q: %w", op, sub, err)
}

// isUnauthorized reports a refused permission (PermissionDenied) or refused
// credentials (Unauthenticated).
func isUnauthorized(err error) bool {
	switch grpcCode(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

func isIteratorDone(err error) bool { return errors.Is(err, iterator.Done) }

// defaultEndpoint is the service address the Pub/Sub client dials unless
// told otherwise.
const defaultEndpoint = "pubsub.googleapis.com:443"

// transportWatch remembers the last error an RPC of the provider's client
// ended with, so that an operation that runs out of time can say what the
// service or the network last answered (the client retries unavailable
// endpoints until the caller's deadline, which alone says nothing).
type transportWatch struct {
	endpoint string // "" when unknown (a client the caller made)

	mu   sync.Mutex
	last error
	at   time.Time
}

func (w *transportWatch) record(err error) {
	if err == nil || errors.Is(err, context.Canceled) || grpcCode(err) == codes.Canceled {
		return
	}
	w.mu.Lock()
	w.last, w.at = err, time.Now()
	w.mu.Unlock()
}

func (w *transportWatch) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	w.record(err)
	return err
}

func (w *transportWatch) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	w.record(err)
	return s, err
}

// dialOptions install the watch on a client's connections.
func (w *transportWatch) dialOptions() []option.ClientOption {
	return []option.ClientOption{option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(w.unary)),
		option.WithGRPCDialOption(grpc.WithChainStreamInterceptor(w.stream))}
}

// explain adds the endpoint and the last transport error to an error that
// says little by itself: the caller's deadline or cancellation, or the
// service being unavailable. Other errors are returned as they are.
func (w *transportWatch) explain(err error) error {
	if err == nil || w == nil {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
	default:
		switch grpcCode(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Unknown:
		default:
			return err
		}
	}
	w.mu.Lock()
	last, at := w.last, w.at
	w.mu.Unlock()
	te := &TransportError{Err: err, Endpoint: w.endpoint}
	if last != nil && last.Error() != err.Error() {
		te.Last, te.LastAt = last, at
	}
	if te.Endpoint == "" && te.Last == nil {
		return err
	}
	return te
}

// TransportError is an operation that failed without the service saying
// why (the caller's deadline passed, or the service was unavailable), with
// what the provider knows of the connection: the endpoint it dials and the
// last error an RPC ended with. It wraps the operation's error, so
// errors.Is(err, context.DeadlineExceeded) still holds.
type TransportError struct {
	Err      error     // the operation's error
	Endpoint string    // "host:port" of the service ("" when the caller made the client)
	Last     error     // the last error of any RPC of the client, if another one
	LastAt   time.Time // when Last happened
}

func (e *TransportError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	b.WriteString(" (")
	if e.Endpoint != "" {
		b.WriteString("endpoint " + e.Endpoint)
	}
	if e.Last != nil {
		if e.Endpoint != "" {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "last transport error %s ago: %v", time.Since(e.LastAt).Round(time.Millisecond), e.Last)
	} else {
		b.WriteString("; no transport error seen")
	}
	b.WriteString(")")
	return b.String()
}

// Unwrap returns the operation's error.
func (e *TransportError) Unwrap() error { return e.Err }

// maxPublishBackoff caps the pause between the client's publish attempts
// (the client's own goes up to 60s), so that publishes abandoned by Close
// end soon after it.
const maxPublishBackoff = 5 * time.Second

// abandonableRetryer retries publishes as the client's retryer does, with
// pauses of at most maxPublishBackoff, until abandon is closed.
type abandonableRetryer struct {
	inner   gax.Retryer
	abandon <-chan struct{}
}

func (r abandonableRetryer) Retry(err error) (time.Duration, bool) {
	select {
	case <-r.abandon:
		return 0, false
	default:
	}
	d, ok := r.inner.Retry(err)
	return min(d, maxPublishBackoff), ok
}

// abandonablePublishes makes the publishes of a client the provider dialled
// stop retrying once abandon is closed.
func abandonablePublishes(c *pubsub.Client, abandon <-chan struct{}) {
	if c.TopicAdminClient == nil || c.TopicAdminClient.CallOptions == nil {
		return
	}
	var settings gax.CallSettings
	for _, o := range c.TopicAdminClient.CallOptions.Publish {
		o.Resolve(&settings)
	}
	base := settings.Retry
	if base == nil {
		return
	}
	c.TopicAdminClient.CallOptions.Publish = append(slices.Clip(c.TopicAdminClient.CallOptions.Publish),
		gax.WithRetry(func() gax.Retryer { return abandonableRetryer{inner: base(), abandon: abandon} }))
}
