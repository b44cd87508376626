package eventgrid_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/egtest"
)

// lateCancel is a transport whose requests go on at the server after the
// caller gave up on them, as a receive long poll does at Event Grid: a
// cancelled request may still lock events, and its answer is lost.
type lateCancel struct{ next *http.Client }

func (l lateCancel) Do(req *http.Request) (*http.Response, error) {
	type answer struct {
		resp *http.Response
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		resp, err := l.next.Do(req.WithContext(context.WithoutCancel(req.Context())))
		ch <- answer{resp, err}
	}()
	select {
	case a := <-ch:
		return a.resp, a.err
	case <-req.Context().Done():
		go func() {
			if a := <-ch; a.resp != nil {
				_, _ = io.Copy(io.Discard, a.resp.Body)
				_ = a.resp.Body.Close()
			}
		}()
		return nil, req.Context().Err()
	}
}

// pollEnv is topic "t" with subscription "s" (lock 30s) and a namespace
// provider whose requests, once cancelled, still run at the server.
func pollEnv(t *testing.T) *eventgrid.Namespace {
	t.Helper()
	srv := newServer(t)
	require.NoError(t, srv.CreateTopic("t"))
	require.NoError(t, srv.CreateSubscription("t", "s", egtest.SubscriptionConfig{LockDuration: 30 * time.Second}))
	o := namespaceOptions(srv)
	o.LockDuration = 30 * time.Second
	o.ClientOptions.Transport = lateCancel{next: srv.ClientOptions().Transport.(*http.Client)}
	return newNamespace(t, o)
}

func publishOne(t *testing.T, ns *eventgrid.Namespace, typ string) {
	t.Helper()
	ev := crossbus.NewEvent(typ, "/test")
	require.NoError(t, ns.Publish(context.Background(), "t", []*driver.Event{&ev}))
}

// An event that arrives while a receive request runs whose Receive already
// returned (its context ended) goes to the next Receive: the request was
// not cancelled, so Event Grid did not lock the event for an answer nobody
// read.
func TestAReceiveWhoseContextEndsLeavesItsRequestToTheNext(t *testing.T) {
	ns := pollEnv(t)
	r, err := ns.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "t", Name: "s"})
	require.NoError(t, err)
	defer r.Close(context.Background())
	buf := make([]driver.Delivery, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = r.Receive(ctx, buf)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	publishOne(t, ns, "com.example.late")

	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n, err := r.Receive(ctx, buf)
	require.NoError(t, err, "the event the running request got")
	require.Equal(t, 1, n)
	assert.Equal(t, "com.example.late", buf[0].Event().Type())
	assert.Equal(t, 1, buf[0].Attempt())
	require.NoError(t, buf[0].Ack(ctx))
}

// What a request gets after its receiver closed is released at once, for
// the next reader.
func TestARequestThatEndsAfterCloseReleasesWhatItGot(t *testing.T) {
	ns := pollEnv(t)
	r, err := ns.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "t", Name: "s"})
	require.NoError(t, err)
	buf := make([]driver.Delivery, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = r.Receive(ctx, buf)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, r.Close(context.Background()))
	publishOne(t, ns, "com.example.after-close")

	next, err := ns.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "t", Name: "s"})
	require.NoError(t, err)
	defer next.Close(context.Background())
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := next.Receive(ctx, buf)
	require.NoError(t, err, "the event is available again long before its lock (30s) expires")
	require.Equal(t, 1, n)
	assert.Equal(t, "com.example.after-close", buf[0].Event().Type())
}
