package eventgrid_test

import (
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
	"github.com/crossbus/crossbus/providers/azure/eventgrid"
	"github.com/crossbus/crossbus/providers/memory"
)

func webhookEndpoint(t *testing.T) *crossbus.Endpoint {
	t.Helper()
	b := newBus(t, memory.New(memory.Options{AutoCreate: true}))
	ep, err := b.NewEndpoint("topic", "sub", newSink(), crossbus.WithDeadLetterTopic("dead"))
	require.NoError(t, err)
	return ep
}

func TestNewWebhookRefusesToRunWithoutAuthentication(t *testing.T) {
	ep := webhookEndpoint(t)
	_, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "WebhookOptions.InsecureNoAuthentication", "the error names the option that opts out")
	assert.ErrorContains(t, err, "eventgrid.SharedSecret", "and the authenticators that opt in")

	_, err = eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}, InsecureNoAuthentication: true})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.ErrorContains(t, err, "both set")

	_, err = eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{InsecureNoAuthentication: true})
	require.NoError(t, err)
}

// Authenticators that would refuse every request are refused when the
// Webhook is made, not discovered when every push fails.
func TestNewWebhookRefusesAuthenticatorsThatRefuseEverything(t *testing.T) {
	ep := webhookEndpoint(t)
	for _, tc := range []struct {
		auth eventgrid.Authenticator
		want string
	}{
		{eventgrid.SharedSecret{}, "SharedSecret.Secret is empty"},
		{eventgrid.SharedSecret{Secret: "s3cret", QueryParam: "-", Header: "-"}, "both its QueryParam and its Header disabled"},
		{eventgrid.BearerToken{}, "BearerToken.Verifier is nil"},
		{eventgrid.BearerToken{Verifier: eventgrid.NewEntraID("", hookURI)}, "EntraID.TenantID is empty"},
		{eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(tenant)}, "EntraID.Audiences is empty"},
		{eventgrid.BearerToken{Verifier: (*eventgrid.EntraID)(nil)}, "nil *EntraID"},
	} {
		_, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{Auth: tc.auth})
		require.ErrorIs(t, err, crossbus.ErrInvalidOption, "%#v", tc.auth)
		assert.ErrorContains(t, err, tc.want)
	}
	for _, ok := range []eventgrid.Authenticator{
		eventgrid.SharedSecret{Secret: "s3cret"},
		eventgrid.SharedSecret{Secret: "s3cret", QueryParam: "-"},
		eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(tenant, hookURI)},
	} {
		_, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{Auth: ok})
		assert.NoError(t, err, "%#v", ok)
	}
}

// Unauthenticated and wrongly authenticated requests get 401 before a byte
// of their body is read: the Webhook reads none of a 64 MiB body sent to a
// real server and the client stops sending it (the server itself drains at
// most 256 KiB of a chunked body before it closes the connection). Only a
// request marked as a validation handshake, on a Webhook that exempts
// handshakes, is read, and no further than 64 KiB.
func TestWebhookRefusesBeforeReadingTheBody(t *testing.T) {
	one, two := signingKeys()
	ids := newIdentityServer(t, map[string]*rsa.PublicKey{"kid-1": &one.PublicKey})
	entra := eventgrid.NewEntraID(tenant, hookURI)
	entra.OpenIDConfigurationURL = ids.configURL()
	now := time.Now()
	const size = 64 << 20

	for _, tc := range []struct {
		name    string
		opts    eventgrid.WebhookOptions
		query   string
		header  map[string]string
		maxRead int64
	}{
		{name: "no secret", opts: eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}}},
		{name: "wrong secret in the query", opts: eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}}, query: "?secret=guess"},
		{name: "wrong secret in the header", opts: eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}},
			header: map[string]string{"X-Webhook-Secret": "guess"}},
		{name: "no token", opts: eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: entra}}},
		{name: "forged token", opts: eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: entra}},
			header: map[string]string{"Authorization": "Bearer " + entraToken(t, two, "kid-1", "RS256", v1Claims(now))}},
		{name: "token of another application", opts: eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: entra}},
			header: map[string]string{"Authorization": "Bearer " + entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "appid", intruder))}},
		{name: "a delivery on a webhook exempting handshakes", opts: eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}, AllowUnauthenticatedHandshake: true},
			header: map[string]string{"aeg-event-type": "Notification"}},
		{name: "a large body marked as a handshake", opts: eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}, AllowUnauthenticatedHandshake: true},
			header: map[string]string{"aeg-event-type": "SubscriptionValidation"}, maxRead: 64<<10 + 1},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", tc.name, chunked), func(t *testing.T) {
				t.Parallel() // each server takes half a second to close a connection it did not read
				p := newPushEnv(t, tc.opts)
				meter := &bodymeter.Meter{Handler: p.hook}
				srv := httptest.NewServer(meter)
				t.Cleanup(srv.Close)
				body := &bodymeter.Body{Size: size}
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/events"+tc.query, body)
				require.NoError(t, err)
				req.ContentLength = size
				if chunked {
					req.ContentLength = -1
				}
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				assert.LessOrEqual(t, meter.N.Load(), tc.maxRead, "body bytes the Webhook read")
				assert.Less(t, body.N.Load(), int64(size), "the server did not take the whole body")
				evs, _ := p.sink.handled()
				assert.Empty(t, evs)
			})
		}
	}

	// Measured exactly, without a network in between.
	p := newPushEnv(t, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}})
	for _, method := range []string{http.MethodPost, http.MethodOptions} {
		body := &bodymeter.Body{Size: size}
		req := httptest.NewRequest(method, "/events?secret=guess", body)
		req.Header.Set("WebHook-Request-Origin", eventgrid.Origin)
		rec := httptest.NewRecorder()
		p.hook.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, method)
		assert.Zero(t, body.N.Load(), "no body byte was consumed (%s)", method)
		assert.Equal(t, "close", rec.Header().Get("Connection"))
	}
}

// MaxBodyBytes: 0 is the default, negative is refused, and a body over the
// limit gets 413 without being read further: not at all when its
// Content-Length says so, up to the limit when it is streamed.
func TestWebhookBodyLimit(t *testing.T) {
	ep := webhookEndpoint(t)
	_, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{InsecureNoAuthentication: true, MaxBodyBytes: -1})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption, "a negative limit is refused, not taken as the default")
	assert.ErrorContains(t, err, "MaxBodyBytes must not be negative")

	for _, tc := range []struct {
		max, limit int64
	}{{0, eventgrid.DefaultMaxBodyBytes}, {1 << 10, 1 << 10}} {
		hook, err := eventgrid.NewWebhook(ep, eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: "s3cret"}, MaxBodyBytes: tc.max})
		require.NoError(t, err)

		declared := &bodymeter.Body{Size: tc.limit + 1}
		req := httptest.NewRequest(http.MethodPost, "/events?secret=s3cret", declared)
		req.ContentLength = declared.Size
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "MaxBodyBytes %d", tc.max)
		assert.Zero(t, declared.N.Load(), "a declared length over the limit is refused unread")

		streamed := &bodymeter.Body{Size: 64 << 20}
		req = httptest.NewRequest(http.MethodPost, "/events?secret=s3cret", streamed)
		req.ContentLength = -1
		rec = httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "MaxBodyBytes %d", tc.max)
		assert.LessOrEqual(t, streamed.N.Load(), tc.limit+1, "a streamed body is read no further than the limit")
	}
}
