package aws

import (
	"context"
	"errors"
	"fmt"

	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/crossbus/crossbus/driver"
)

// EntryError is the failure of one entry of a batch call (SendMessageBatch,
// PublishBatch, PutEvents, DeleteMessageBatch, ChangeMessageVisibilityBatch)
// as the service reported it. It is the cause inside a
// crossbus.PublishError's EventError for events the service refused.
type EntryError struct {
	Op        string // the API operation, e.g. "PutEvents"
	Code      string // the service's error code, e.g. "ThrottlingException"
	Message   string
	Retryable bool // the code is one AWS documents as worth retrying
}

// Error describes the failure with the service's code and message.
func (e *EntryError) Error() string {
	return fmt.Sprintf("aws: %s entry failed: %s: %s", e.Op, e.Code, e.Message)
}

// isNotFound reports whether err is a service's "does not exist" error.
func isNotFound(err error) bool {
	var q *sqstypes.QueueDoesNotExist
	var t *snstypes.NotFoundException
	var b *ebtypes.ResourceNotFoundException
	return errors.As(err, &q) || errors.As(err, &t) || errors.As(err, &b)
}

// mapErr wraps err with notFound (driver.ErrTopicNotFound or
// ErrSubscriptionNotFound) when the service said the entity does not exist,
// and with driver.ErrUnauthorized when it refused the credentials or the
// permission (see isUnauthorized).
func mapErr(err error, notFound error) error {
	switch {
	case err == nil:
		return nil
	case notFound != nil && isNotFound(err):
		return fmt.Errorf("%w: %w", notFound, err)
	case isUnauthorized(err):
		return fmt.Errorf("%w: %w", driver.ErrUnauthorized, err)
	}
	return err
}

// isUnauthorized reports an error that only a change of credentials or
// permissions fixes: a refused permission (IAM, a queue or topic policy, the
// KMS key of an encrypted queue) or credentials the service does not accept
// (unknown access key, bad signature, no signature). Expired session
// credentials are not included: the SDK's credential cache fetches new ones,
// so a retry can succeed.
func isUnauthorized(err error) bool {
	if isAccessDenied(err) {
		return true
	}
	switch errorCode(err) {
	case "KMS.AccessDeniedException", "KmsAccessDenied", "KMSAccessDenied", "KMSAccessDeniedException",
		"InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId",
		"SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature", "IncompleteSignatureException",
		"MissingAuthenticationToken", "MissingAuthenticationTokenException":
		return true
	}
	return false
}

// errorCode is the AWS error code of err ("" when it is not an API error).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isAccessDenied reports an authorization failure (so an optional check
// such as DescribeEventBus can be skipped).
func isAccessDenied(err error) bool {
	switch errorCode(err) {
	case "AccessDeniedException", "AccessDenied", "AuthorizationError", "UnauthorizedOperation":
		return true
	}
	return false
}

// ctxErr returns ctx's error when err came from ctx ending.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctx.Err()
	}
	return err
}
