package eventgrid

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Authenticator decides whether a push request comes from the expected
// sender. A Webhook answers 401 Unauthorized when it returns an error.
type Authenticator interface {
	Authenticate(r *http.Request) error
}

// ErrUnauthenticated is matched by the errors Authenticators return.
var ErrUnauthenticated = errors.New("eventgrid: push request not authenticated")

// SharedSecret authenticates requests that carry a secret, either in a query
// parameter of the subscription's endpoint URL
// (https://host/events?secret=…, which Event Grid sends with every request,
// handshakes included) or in a header set as a static delivery property of
// the event subscription. Either place matching is enough. The comparison
// takes constant time.
type SharedSecret struct {
	// Secret is the expected value; it must not be empty.
	Secret string
	// QueryParam is the query parameter (default "secret"; "-" disables).
	QueryParam string
	// Header is the header (default "X-Webhook-Secret"; "-" disables).
	Header string
}

// Authenticate implements Authenticator.
func (s SharedSecret) Authenticate(r *http.Request) error {
	if s.Secret == "" {
		return fmt.Errorf("%w: SharedSecret.Secret is empty", ErrUnauthenticated)
	}
	q, h := s.QueryParam, s.Header
	if q == "" {
		q = "secret"
	}
	if h == "" {
		h = "X-Webhook-Secret"
	}
	if q != "-" {
		if v := r.URL.Query().Get(q); v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.Secret)) == 1 {
			return nil
		}
	}
	if h != "-" {
		if v := r.Header.Get(h); v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.Secret)) == 1 {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching shared secret", ErrUnauthenticated)
}

// TokenVerifier checks a bearer token, for example a Microsoft Entra ID
// access token Event Grid obtained for the subscription's application:
// signature against the tenant's published keys, issuer, audience (the
// application ID URI), expiry. It returns an error to refuse the token.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) error
}

// TokenVerifierFunc adapts a function to a TokenVerifier.
type TokenVerifierFunc func(ctx context.Context, token string) error

// VerifyToken calls f.
func (f TokenVerifierFunc) VerifyToken(ctx context.Context, token string) error { return f(ctx, token) }

// BearerToken authenticates requests with "Authorization: Bearer <token>"
// that its Verifier accepts: Event Grid's Microsoft Entra ID delivery
// authentication.
type BearerToken struct {
	Verifier TokenVerifier
}

// Authenticate implements Authenticator.
func (b BearerToken) Authenticate(r *http.Request) error {
	if b.Verifier == nil {
		return fmt.Errorf("%w: BearerToken has no Verifier", ErrUnauthenticated)
	}
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	if err := b.Verifier.VerifyToken(r.Context(), token); err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return nil
}
