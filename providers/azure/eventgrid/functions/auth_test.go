package functions_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/bodymeter"
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/functions"
	"github.com/crossbus/crossbus/providers/memory"
)

// billing returns a handler with a Service Bus function Billing whose
// events are recorded.
func billing(t *testing.T, opts functions.Options) (*functions.Handler, *[]string) {
	t.Helper()
	h, err := functions.NewHandler(opts)
	require.NoError(t, err)
	b, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var mu sync.Mutex
	var ids []string
	ep, err := b.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		ids = append(ids, e.ID())
		mu.Unlock()
		return nil
	}), crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	require.NoError(t, h.Register(functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message", Endpoint: ep}))
	return h, &ids
}

const invocation = `{"Data":{"message":"hello"},"Metadata":{"MessageId":"m-1","ContentType":"text/plain"}}`

func TestNewHandlerRefusesToRunWithoutAuthentication(t *testing.T) {
	_, err := functions.NewHandler(functions.Options{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "Options.InsecureNoAuthentication", "the error names the option that opts out")
	assert.ErrorContains(t, err, "functions.LoopbackOnly{}", "and the authenticator of the custom-handler model")

	for _, tc := range []struct {
		opts functions.Options
		want string
	}{
		{functions.Options{Auth: functions.LoopbackOnly{}, InsecureNoAuthentication: true}, "both set"},
		{functions.Options{Auth: eventgrid.SharedSecret{}}, "SharedSecret.Secret is empty"},
		{functions.Options{Auth: functions.LoopbackOnly{}, MaxBodyBytes: -1}, "MaxBodyBytes must not be negative"},
	} {
		_, err := functions.NewHandler(tc.opts)
		require.ErrorIs(t, err, crossbus.ErrInvalidOption)
		assert.ErrorContains(t, err, tc.want)
	}
}

// The opt-out accepts callers from anywhere.
func TestInsecureNoAuthenticationAcceptsEveryCaller(t *testing.T) {
	h, ids := billing(t, functions.Options{InsecureNoAuthentication: true})
	req := httptest.NewRequest(http.MethodPost, "/Billing", strings.NewReader(invocation))
	req.RemoteAddr = "203.0.113.7:41000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, []string{"m-1"}, *ids)
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:41000":        true,
		"127.9.8.7:41000":        true,
		"[::1]:41000":            true,
		"[::ffff:127.0.0.1]:443": true,
		"203.0.113.7:41000":      false,
		"10.0.0.4:41000":         false,
		"[2001:db8::1]:41000":    false,
		"[::ffff:10.0.0.4]:443":  false,
		"localhost:41000":        false, // a peer address is never a name
		"":                       false,
		"garbage":                false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/Billing", nil)
		r.RemoteAddr = addr
		err := functions.LoopbackOnly{}.Authenticate(r)
		if ok {
			assert.NoError(t, err, addr)
		} else {
			assert.ErrorIs(t, err, functions.ErrNotLoopback, addr)
		}
	}
}

// A caller that is not on the loopback interface gets 403 before a byte
// of its 64 MiB body is read; its function is not even looked up.
func TestNonLoopbackCallersAreRefusedBeforeTheBodyIsRead(t *testing.T) {
	h, ids := billing(t, functions.Options{Auth: functions.LoopbackOnly{}})
	for _, path := range []string{"/Billing", "/Unknown"} {
		body := &bodymeter.Body{Size: 64 << 20}
		req := httptest.NewRequest(http.MethodPost, path, body)
		req.RemoteAddr = "203.0.113.7:41000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusForbidden, rec.Code, path)
		assert.Zero(t, body.N.Load(), "no body byte was consumed")
		assert.Equal(t, "close", rec.Header().Get("Connection"))
	}
	assert.Empty(t, *ids)

	req := httptest.NewRequest(http.MethodPost, "/Billing", strings.NewReader(invocation))
	req.RemoteAddr = "127.0.0.1:41000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code, "the host's invocation")
	assert.Equal(t, []string{"m-1"}, *ids)
}

// With a shared secret, invocations without it or with a wrong one get 401
// before a byte of their body is read: the handler reads none of a 64 MiB
// body sent to a real server, and the client stops sending it (the server
// itself drains at most 256 KiB of a chunked body before it closes the
// connection).
func TestRefusedInvocationsAreAnsweredBeforeTheBodyIsRead(t *testing.T) {
	h, ids := billing(t, functions.Options{Auth: eventgrid.SharedSecret{Secret: "s3cret", QueryParam: "-", Header: "X-Invocation-Secret"}})
	meter := &bodymeter.Meter{Handler: h}
	srv := httptest.NewServer(meter)
	t.Cleanup(srv.Close)
	const size = 64 << 20
	for _, secret := range []string{"", "guess"} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("secret=%q/chunked=%v", secret, chunked), func(t *testing.T) {
				meter.N.Store(0)
				body := &bodymeter.Body{Size: size}
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/Billing", body)
				require.NoError(t, err)
				req.ContentLength = size
				if chunked {
					req.ContentLength = -1
				}
				if secret != "" {
					req.Header.Set("X-Invocation-Secret", secret)
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				assert.Zero(t, meter.N.Load(), "the handler read no body byte")
				assert.Less(t, body.N.Load(), int64(size), "the server did not take the whole body")
			})
		}
	}
	assert.Empty(t, *ids)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/Billing", strings.NewReader(invocation))
	require.NoError(t, err)
	req.Header.Set("X-Invocation-Secret", "s3cret")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"m-1"}, *ids)
}

// MaxBodyBytes: 0 is the default, negative is refused (see
// TestNewHandlerRefusesToRunWithoutAuthentication), and an invocation over
// the limit gets 413 without being read further: not at all when its
// Content-Length says so, up to the limit when it is streamed.
func TestBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		max, limit int64
	}{{0, functions.DefaultMaxBodyBytes}, {1 << 10, 1 << 10}} {
		h, _ := billing(t, functions.Options{Auth: functions.LoopbackOnly{}, MaxBodyBytes: tc.max})

		declared := &bodymeter.Body{Size: tc.limit + 1}
		req := httptest.NewRequest(http.MethodPost, "/Billing", declared)
		req.RemoteAddr = "127.0.0.1:41000"
		req.ContentLength = declared.Size
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "MaxBodyBytes %d", tc.max)
		assert.Zero(t, declared.N.Load(), "a declared length over the limit is refused unread")

		streamed := &bodymeter.Body{Size: 64 << 20}
		req = httptest.NewRequest(http.MethodPost, "/Billing", streamed)
		req.RemoteAddr = "127.0.0.1:41000"
		req.ContentLength = -1
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "MaxBodyBytes %d", tc.max)
		assert.LessOrEqual(t, streamed.N.Load(), tc.limit+1, "a streamed body is read no further than the limit")
	}
}
