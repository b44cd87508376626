package push_test

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/bodymeter"
	"github.com/crossbus/crossbus/providers/gcp/push"
)

func newEndpoint(t *testing.T) *crossbus.Endpoint {
	t.Helper()
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	ep, err := f.bus.NewEndpoint("uploads", "thumbnails", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { return nil }),
		crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	return ep
}

func TestNewHandlerRefusesToRunWithoutAuthentication(t *testing.T) {
	ep := newEndpoint(t)
	_, err := push.NewHandler(ep, push.Options{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "Options.InsecureNoAuthentication", "the error names the option that opts out")
	assert.ErrorContains(t, err, "push.NewGoogleOIDC", "and the verifier that opts in")

	_, err = push.NewHandler(ep, push.Options{Verifier: push.NewGoogleOIDC(audience, pusher), InsecureNoAuthentication: true})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption, "a verifier and the opt-out contradict each other")
	assert.ErrorContains(t, err, "both set")
}

func TestNewHandlerRefusesAGoogleOIDCThatWouldLetAnyoneIn(t *testing.T) {
	ep := newEndpoint(t)
	for _, tc := range []struct {
		verifier push.Verifier
		want     string
	}{
		{push.NewGoogleOIDC("", pusher), "GoogleOIDC.Audience is empty"},
		{push.NewGoogleOIDC(audience, ""), "GoogleOIDC.Email is empty"},
		{(*push.GoogleOIDC)(nil), "nil *GoogleOIDC"},
	} {
		_, err := push.NewHandler(ep, push.Options{Verifier: tc.verifier})
		require.ErrorIs(t, err, crossbus.ErrInvalidOption)
		assert.ErrorContains(t, err, tc.want)
	}
	_, err := push.NewHandler(ep, push.Options{Verifier: push.NewGoogleOIDC(audience, pusher)})
	assert.NoError(t, err)
}

// The opt-out is for platforms that authenticate callers themselves: any
// caller gets through.
func TestInsecureNoAuthenticationAcceptsEveryCaller(t *testing.T) {
	f := newFixture(t, push.Options{InsecureNoAuthentication: true})
	resp := f.post(t, map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, "")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Len(t, f.events(), 1)
}

// A caller without a valid token is answered 401 before a byte of its body
// is read: the Handler reads none of a 64 MiB body sent to a real server,
// and the client stops sending it (the server itself drains at most 256
// KiB of a chunked body before it closes the connection).
func TestRefusedCallersAreAnsweredBeforeTheBodyIsRead(t *testing.T) {
	a, b := testKeys(t)
	jwks := newJWKS(t, map[string]*rsa.PublicKey{"key-a": &a.PublicKey})
	v := push.NewGoogleOIDC(audience, pusher)
	v.JWKSURL = jwks.URL
	f := newFixture(t, push.Options{Verifier: v})
	meter := &bodymeter.Meter{Handler: f.srv.Config.Handler}
	srv := httptest.NewServer(meter)
	t.Cleanup(srv.Close)
	now := time.Now()

	const size = 64 << 20
	for _, tc := range []struct{ name, auth string }{
		{"no token", ""},
		{"not a bearer token", "Basic dXNlcjpwYXNz"},
		{"signed by another key", "Bearer " + sign(t, b, "key-a", goodClaims(now))},
		{"for another audience", "Bearer " + sign(t, a, "key-a", with(goodClaims(now), "aud", "https://elsewhere.example"))},
		{"from another service account", "Bearer " + sign(t, a, "key-a", with(goodClaims(now), "email", "intruder@evil.iam.gserviceaccount.com"))},
		{"expired", "Bearer " + sign(t, a, "key-a", with(goodClaims(now), "exp", now.Add(-time.Hour).Unix()))},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", tc.name, chunked), func(t *testing.T) {
				meter.N.Store(0)
				body := &bodymeter.Body{Size: size}
				req, err := http.NewRequest(http.MethodPost, srv.URL, body)
				require.NoError(t, err)
				req.ContentLength = size
				if chunked {
					req.ContentLength = -1
				}
				req.Header.Set("Content-Type", "application/json")
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				assert.Zero(t, meter.N.Load(), "the Handler read no body byte")
				assert.Less(t, body.N.Load(), int64(size), "the server did not take the whole body")
			})
		}
	}
	assert.Empty(t, f.events())

	// Measured exactly, without a network in between.
	for _, auth := range []string{"", "Bearer " + sign(t, b, "key-a", goodClaims(now))} {
		body := &bodymeter.Body{Size: size}
		req := httptest.NewRequest(http.MethodPost, "/", body)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		f.srv.Config.Handler.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Zero(t, body.N.Load(), "no body byte was consumed")
		assert.Equal(t, "close", rec.Header().Get("Connection"))
	}

	// The same server takes an authenticated request.
	resp := f.post(t, map[string]string{"Authorization": "Bearer " + sign(t, a, "key-a", goodClaims(now)),
		"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, "")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// MaxBodyBytes: 0 is the default, negative is refused, and a body over the
// limit gets 413 without being read further: not at all when its
// Content-Length says so, up to the limit when it is streamed.
func TestBodyLimit(t *testing.T) {
	ep := newEndpoint(t)
	_, err := push.NewHandler(ep, push.Options{InsecureNoAuthentication: true, MaxBodyBytes: -1})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "MaxBodyBytes must not be negative")

	for _, tc := range []struct {
		max, limit int64
	}{{0, push.DefaultMaxBodyBytes}, {1 << 10, 1 << 10}} {
		h, err := push.NewHandler(ep, push.Options{InsecureNoAuthentication: true, MaxBodyBytes: tc.max})
		require.NoError(t, err)

		declared := &bodymeter.Body{Size: tc.limit + 1}
		req := httptest.NewRequest(http.MethodPost, "/", declared)
		req.ContentLength = declared.Size
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "MaxBodyBytes %d", tc.max)
		assert.Zero(t, declared.N.Load(), "a declared length over the limit is refused unread")

		streamed := &bodymeter.Body{Size: 64 << 20}
		req = httptest.NewRequest(http.MethodPost, "/", streamed)
		req.ContentLength = -1
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "MaxBodyBytes %d", tc.max)
		assert.LessOrEqual(t, streamed.N.Load(), tc.limit+1, "a streamed body is read no further than the limit")
	}
}
