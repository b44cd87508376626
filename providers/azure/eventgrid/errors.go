package eventgrid

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/crossbus/crossbus/driver"
)

// ErrLockLost is matched (errors.Is) by settle and lease errors for a
// delivery whose lock expired or was never valid: Event Grid redelivers the
// event, so the outcome the handler reached is not recorded.
var ErrLockLost = errors.New("eventgrid: lock lost")

// ErrUnauthorized is matched by errors for requests Event Grid refused
// because the key or token is missing, wrong, or lacks the role. It also
// matches driver.ErrUnauthorized, so a receive refused this way stops the
// subscription.
var ErrUnauthorized error = &sentinel{msg: "eventgrid: unauthorized", also: driver.ErrUnauthorized}

// sentinel is an error value that also matches a crossbus sentinel.
type sentinel struct {
	msg  string
	also error
}

func (s *sentinel) Error() string        { return s.msg }
func (s *sentinel) Is(target error) bool { return target == s.also }

// statusOf returns the HTTP status of an Azure SDK error (0 if none).
func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// mapError wraps an Azure SDK error with the crossbus sentinel that matches
// it; notFound is the sentinel a 404 means for the operation.
func mapError(op string, err error, notFound error) error {
	if err == nil {
		return nil
	}
	switch statusOf(err) {
	case http.StatusNotFound:
		return fmt.Errorf("eventgrid: %s: %w: %w", op, notFound, err)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("eventgrid: %s: %w: %w", op, ErrUnauthorized, err)
	case http.StatusRequestEntityTooLarge:
		return fmt.Errorf("eventgrid: %s: %w: %w", op, driver.ErrTooLarge, err)
	}
	return fmt.Errorf("eventgrid: %s: %w", op, err)
}
