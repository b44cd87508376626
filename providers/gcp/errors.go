package gcp

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/iterator"
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
