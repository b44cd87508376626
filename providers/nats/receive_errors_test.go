package nats_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/nats"
)

// startAuthServer runs a JetStream server whose clients log in as "admin"
// (every permission) or "app" (publishing pull requests to any consumer is
// refused when denyPull is set).
func startAuthServer(t *testing.T, denyPull bool) (*server.Server, *server.Options) {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "admin", Password: "admin"}, appUser(denyPull)}}
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats-server not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv, opts
}

func appUser(denyPull bool) *server.User {
	u := &server.User{Username: "app", Password: "app"}
	if denyPull {
		u.Permissions = &server.Permissions{Publish: &server.SubjectPermission{
			Allow: []string{">"}, Deny: []string{jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT.>"}}}
	}
	return u
}

// subscribeAs opens a bus as user ("" for none) on srv and subscribes to
// orders/billing (created by the admin, ordered when asked).
func subscribeAs(t *testing.T, srv *server.Server, user string, ordered bool, o nats.Options) (*crossbus.Bus, *crossbus.Subscription, *atomic.Int32) {
	t.Helper()
	ctx := context.Background()
	var login []natsio.Option
	if user != "" {
		login = []natsio.Option{natsio.UserInfo("admin", "admin")}
	}
	admin, err := nats.New(ctx, nats.Options{Servers: srv.ClientURL(), ConnOptions: login, PinnedTTL: o.PinnedTTL})
	require.NoError(t, err)
	require.NoError(t, admin.CreateSubscription(ctx, "orders", "billing", ordered))
	require.NoError(t, admin.Close(ctx))

	o.Servers = srv.ClientURL()
	o.ConnOptions = append(o.ConnOptions, natsio.ReconnectWait(100*time.Millisecond),
		natsio.ErrorHandler(func(*natsio.Conn, *natsio.Subscription, error) {})) // quiet: the tests provoke them
	if user != "" {
		o.ConnOptions = append(o.ConnOptions, natsio.UserInfo(user, user))
	}
	p, err := nats.New(ctx, o)
	require.NoError(t, err)
	bus, err := crossbus.New(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	var handled atomic.Int32
	opts := []crossbus.RouteOption{crossbus.WithDrainTimeout(time.Second)}
	if ordered {
		opts = append(opts, crossbus.WithOrdering())
	}
	s, err := bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		handled.Add(1)
		return nil
	}), opts...)
	require.NoError(t, err)
	return bus, s, &handled
}

func waitStopped(t *testing.T, s *crossbus.Subscription, within time.Duration) error {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(within):
		t.Fatalf("the subscription still runs after %v", within)
	}
	err := s.Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "billing")
	return err
}

// TestDeletedStreamSurfacesAsTopicNotFound deletes the stream of a topic
// under a running subscription: it stops with crossbus.ErrTopicNotFound.
func TestDeletedStreamSurfacesAsTopicNotFound(t *testing.T) {
	srv, _ := startAuthServer(t, false)
	bus, s, handled := subscribeAs(t, srv, "admin", false, nats.Options{})
	e := crossbus.NewEvent("com.example.order", "/t")
	require.NoError(t, bus.Publish(context.Background(), "orders", &e))
	require.Eventually(t, func() bool { return handled.Load() == 1 }, 10*time.Second, 10*time.Millisecond)

	var js jetstream.JetStream
	require.True(t, bus.As(&js))
	require.NoError(t, js.DeleteStream(context.Background(), "orders"))
	err := waitStopped(t, s, 10*time.Second)
	assert.ErrorIs(t, err, crossbus.ErrTopicNotFound)
	assert.NotErrorIs(t, err, crossbus.ErrSubscriptionNotFound)
}

// TestRevokedCredentialsSurfaceAsUnauthorized removes the subscriber's user
// from the server's configuration: the server closes its connection and
// refuses it again on reconnect, and the subscription stops with
// crossbus.ErrUnauthorized.
func TestRevokedCredentialsSurfaceAsUnauthorized(t *testing.T) {
	srv, opts := startAuthServer(t, false)
	_, s, _ := subscribeAs(t, srv, "app", false, nats.Options{})

	reload := *opts
	reload.Users = []*server.User{{Username: "admin", Password: "admin"}}
	require.NoError(t, srv.ReloadOptions(&reload))
	err := waitStopped(t, s, 15*time.Second)
	assert.ErrorIs(t, err, crossbus.ErrUnauthorized)
	assert.NotErrorIs(t, err, crossbus.ErrClosed)
}

// TestRefusedPullSurfacesAsUnauthorized subscribes as a user that may not
// publish pull requests: the server reports a permissions violation, no
// message or heartbeat ever comes, and the subscription stops with
// crossbus.ErrUnauthorized. (An ordered subscription pulls with a short
// expiry, so the missing heartbeats show within a second.)
func TestRefusedPullSurfacesAsUnauthorized(t *testing.T) {
	srv, _ := startAuthServer(t, true)
	_, s, _ := subscribeAs(t, srv, "app", true, nats.Options{PinnedTTL: 3 * time.Second})
	err := waitStopped(t, s, 15*time.Second)
	assert.ErrorIs(t, err, crossbus.ErrUnauthorized)
	assert.ErrorContains(t, err, "CONSUMER.MSG.NEXT")
}

// TestServerRestartIsNotFatal stops the server under a running ordered
// subscription for a few seconds: its pulls fail while the server is away
// (missing heartbeats, a consumer lookup that gets no answer), which is
// transient, so the subscription keeps running and receives what is
// published after the restart.
func TestServerRestartIsNotFatal(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	bus, s, handled := subscribeAs(t, srv, "", true, nats.Options{PinnedTTL: 3 * time.Second})

	opts.Port = srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(3 * time.Second) // several pull expiries without a server
	srv, err = server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})

	e := crossbus.NewEvent("com.example.order", "/t")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return bus.Publish(ctx, "orders", &e) == nil
	}, 15*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return handled.Load() >= 1 }, 20*time.Second, 10*time.Millisecond)
	assert.NoError(t, s.Err())
	select {
	case <-s.Done():
		t.Fatal("the subscription stopped")
	default:
	}
}
