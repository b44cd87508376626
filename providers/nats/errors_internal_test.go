package nats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// lookup is a consumer whose Info answers with a fixed error.
type lookup struct {
	jetstream.Consumer
	err error
}

func (l lookup) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	if l.err != nil {
		return nil, l.err
	}
	return &jetstream.ConsumerInfo{}, nil
}

// TestPermanentMapsConsumerLookups checks which failed pulls stop a
// subscription, by what the consumer lookup after them answers: a missing
// consumer or stream, or an account without JetStream, is permanent; no
// answer, no responders, or a consumer that is still there is not.
func TestPermanentMapsConsumerLookups(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(srv.Shutdown)
	conn, err := natsio.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	p := &Provider{conn: conn, opts: Options{Conn: conn}}
	require.NoError(t, p.opts.fill())

	pullFailed := errors.New("pull failed")
	for _, tc := range []struct {
		cause, lookup error
		want          error // nil: transient
	}{
		{jetstream.ErrConsumerDeleted, jetstream.ErrConsumerNotFound, crossbus.ErrSubscriptionNotFound},
		{jetstream.ErrConsumerDeleted, jetstream.ErrStreamNotFound, crossbus.ErrTopicNotFound},
		{jetstream.ErrNoHeartbeat, jetstream.ErrJetStreamNotEnabledForAccount, crossbus.ErrUnauthorized},
		{jetstream.ErrNotPullConsumer, nil, crossbus.ErrInvalidOption},
		{jetstream.ErrConsumerDeleted, nil, nil}, // deleted and made again
		{jetstream.ErrNoHeartbeat, context.DeadlineExceeded, nil},
		{jetstream.ErrNoHeartbeat, natsio.ErrNoResponders, nil},
		{jetstream.ErrBadRequest, nil, nil},
		{pullFailed, jetstream.ErrJetStreamNotEnabled, nil},
	} {
		r := &receiver{p: p, spec: driver.SubscriptionSpec{Topic: "orders", Name: "billing"}, stream: "orders", consumer: "billing",
			cons: lookup{err: tc.lookup}}
		got := r.permanent(context.Background(), tc.cause)
		if tc.want == nil {
			assert.NoError(t, got, "pull %v, lookup %v", tc.cause, tc.lookup)
			continue
		}
		assert.ErrorIs(t, got, tc.want, "pull %v, lookup %v", tc.cause, tc.lookup)
		assert.ErrorContains(t, got, "billing")
	}

	conn.Close()
	r := &receiver{p: p, spec: driver.SubscriptionSpec{Topic: "orders", Name: "billing"}, cons: lookup{}}
	assert.ErrorIs(t, r.permanent(context.Background(), jetstream.ErrMsgIteratorClosed), crossbus.ErrClosed,
		"a connection closed without an authorization error is closed, not unauthorized")
}
