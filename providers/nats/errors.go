package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossbus/crossbus/driver"
)

// Receive errors. A receiver's pull can fail for reasons that pass (a
// disconnect, a server restart, a consumer leader election) and for reasons
// that do not. When a pull fails, the receiver asks the server about its
// consumer and maps what it learns onto the portable sentinels, which stop
// the subscription (see driver.Receiver):
//
//   - the consumer is gone (JetStream error 10014, "consumer not found", after
//     the pull ended with "409 Consumer Deleted"): driver.ErrSubscriptionNotFound;
//   - the stream is gone (error 10059, "stream not found"):
//     driver.ErrTopicNotFound;
//   - the connection was closed after the server refused its credentials
//     ("Authorization Violation", "authentication expired" or "revoked"),
//     JetStream is not enabled for the account (error 10039), or the server
//     refused the permission to pull from the consumer, to read its
//     information or to subscribe to the pull's reply inbox ("Permissions
//     Violation"): driver.ErrUnauthorized;
//   - the consumer was replaced by a push consumer: driver.ErrInvalidOption;
//   - the connection was closed otherwise: driver.ErrClosed.
//
// Everything else (no heartbeat, no responders, timeouts, "409 Leadership
// Change", "Server Shutdown", "400 Bad Request" on a consumer that still
// exists) is transient: the receiver pulls again and the portable layer backs
// off.

// probeTimeout bounds the consumer lookup after a failed pull.
const probeTimeout = 5 * time.Second

// authError reports a connection error that means the server refused the
// client's credentials.
func authError(err error) bool {
	return errors.Is(err, natsio.ErrAuthorization) || errors.Is(err, natsio.ErrAuthExpired) ||
		errors.Is(err, natsio.ErrAuthRevoked) || errors.Is(err, natsio.ErrAccountAuthExpired)
}

// permanent inspects a failed pull (cause) and returns the error that stops
// the subscription, or nil when pulling again may work.
func (r *receiver) permanent(ctx context.Context, cause error) error {
	name := r.spec.Name
	if r.p.conn.IsClosed() {
		if last := r.p.conn.LastError(); authError(last) {
			return fmt.Errorf("nats: subscription %q: the server refused the connection's credentials (%w): %w", name, driver.ErrUnauthorized, last)
		}
		return fmt.Errorf("nats: subscription %q: connection closed: %w", name, driver.ErrClosed)
	}
	if errors.Is(cause, jetstream.ErrNotPullConsumer) {
		return fmt.Errorf("%w: nats: subscription %q: consumer %q is not a pull consumer", driver.ErrInvalidOption, name, r.consumer)
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := r.cons.Info(pctx)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("nats: subscription %q: consumer %q of stream %q was deleted: %w", name, r.consumer, r.stream, driver.ErrSubscriptionNotFound)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		r.p.topics.Delete(r.spec.Topic)
		return fmt.Errorf("nats: subscription %q: stream %q of topic %q was deleted: %w", name, r.stream, r.spec.Topic, driver.ErrTopicNotFound)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("nats: subscription %q: JetStream is not enabled for the account (%w): %w", name, driver.ErrUnauthorized, err)
	}
	if denied := r.permissionDenied(); denied != nil {
		return fmt.Errorf("nats: subscription %q: the server refused a permission the consumer needs (%w): %w", name, driver.ErrUnauthorized, denied)
	}
	return nil
}

// permissionDenied returns the connection's last error when it is a
// permissions violation for this consumer: publishing its pull requests or
// information requests, or subscribing to or replying on a reply inbox
// (every pull gets its messages on one). The server reports these asynchronously, so the
// connection's last error is the only trace a pull that stopped receiving
// has of them.
func (r *receiver) permissionDenied() error {
	last := r.p.conn.LastError()
	if !errors.Is(last, natsio.ErrPermissionViolation) {
		return nil
	}
	msg := last.Error()
	inbox := natsio.InboxPrefix // "_INBOX."
	if p := r.p.conn.Opts.InboxPrefix; p != "" {
		inbox = p + "."
	}
	for _, s := range []string{
		`"` + jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + r.stream + "." + r.consumer + `"`,
		`"` + jetstream.DefaultAPIPrefix + "CONSUMER.INFO." + r.stream + "." + r.consumer + `"`,
		`Subscription to "` + inbox,
		`Reply of "` + inbox,
	} {
		if strings.Contains(msg, s) {
			return last
		}
	}
	return nil
}
