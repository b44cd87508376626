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
// sender, from its URL and headers: a Webhook calls it before it reads a
// byte of the body, and answers 401 Unauthorized when it returns an error
// (503 when the error matches ErrKeysUnavailable, so Event Grid retries).
//
// The Authenticators of this package are SharedSecret and BearerToken
// (with EntraID for Microsoft Entra ID tokens). NewWebhook calls an
// Authenticator's Validate method, when it has one, and refuses one that
// would refuse every request (an empty secret, no verifier).
type Authenticator interface {
	Authenticate(r *http.Request) error
}

// validator is an Authenticator or TokenVerifier that can tell before it
// is used that it would refuse every request: SharedSecret, BearerToken and
// EntraID are. NewWebhook and functions.NewHandler call Validate on theirs.
type validator interface {
	Validate() error
}

// validate reports an Authenticator that would refuse every request.
func validate(a Authenticator) error {
	if v, ok := a.(validator); ok {
		return v.Validate()
	}
	return nil
}

// ErrUnauthenticated is matched by the errors Authenticators return.
var ErrUnauthenticated = errors.New("eventgrid: push request not authenticated")

// SharedSecret authenticates requests that carry a secret, either in a query
// parameter of the subscription's endpoint URL
// (https://host/events?secret=…, which Event Grid sends with every request,
// handshakes included) or in a header set as a static delivery property of
// the event subscription. Either place matching is enough. The comparison
// takes constant time. One line authenticates a Webhook:
//
//	eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: os.Getenv("WEBHOOK_SECRET")}}
//
// A secret in the URL reaches every request, the validation handshakes
// included; a secret in a delivery header does not reach the handshakes,
// which then need WebhookOptions.AllowUnauthenticatedHandshake. Use a long
// random secret and HTTPS.
type SharedSecret struct {
	// Secret is the expected value; it must not be empty (NewWebhook and
	// functions.NewHandler refuse an empty one).
	Secret string
	// QueryParam is the query parameter (default "secret"; "-" disables).
	QueryParam string
	// Header is the header (default "X-Webhook-Secret"; "-" disables).
	Header string
}

// Validate reports a SharedSecret that would refuse every request: an
// empty Secret, or both places disabled.
func (s SharedSecret) Validate() error {
	switch {
	case s.Secret == "":
		return errors.New("SharedSecret.Secret is empty")
	case s.QueryParam == "-" && s.Header == "-":
		return errors.New("SharedSecret has both its QueryParam and its Header disabled")
	}
	return nil
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
// access token Event Grid obtained for the subscription's application
// (EntraID checks those: signature against the tenant's published keys,
// issuer, audience, expiry, the calling application). It returns an error
// to refuse the token, one matching ErrKeysUnavailable when it cannot
// decide now.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) error
}

// TokenVerifierFunc adapts a function to a TokenVerifier.
type TokenVerifierFunc func(ctx context.Context, token string) error

// VerifyToken calls f.
func (f TokenVerifierFunc) VerifyToken(ctx context.Context, token string) error { return f(ctx, token) }

// BearerToken authenticates requests with "Authorization: Bearer <token>"
// that its Verifier accepts: Event Grid's Microsoft Entra ID delivery
// authentication, in one line:
//
//	eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(tenantID, "api://my-webhook")}}
type BearerToken struct {
	Verifier TokenVerifier
}

// Validate reports a BearerToken that would refuse every request: no
// Verifier, or one whose own Validate fails (an EntraID without tenant or
// audience).
func (b BearerToken) Validate() error {
	if b.Verifier == nil {
		return errors.New("BearerToken.Verifier is nil")
	}
	if v, ok := b.Verifier.(validator); ok {
		return v.Validate()
	}
	return nil
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
