package push

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/crossbus/crossbus/driver"
)

// Verifier checks that a pushed request comes from whom it should.
type Verifier interface {
	// Verify returns nil for an authentic request, an error wrapping
	// ErrUnauthorized for one that is not, and an error wrapping
	// ErrKeysUnavailable when it cannot decide now.
	Verify(ctx context.Context, r *http.Request) error
}

var (
	// ErrUnauthorized: the request has no valid token. It also matches
	// driver.ErrUnauthorized.
	ErrUnauthorized error = &sentinel{msg: "push: unauthorized", also: driver.ErrUnauthorized}
	// ErrKeysUnavailable: the signing keys could not be fetched.
	ErrKeysUnavailable = errors.New("push: signing keys unavailable")
)

// sentinel is an error value that also matches a crossbus sentinel.
type sentinel struct {
	msg  string
	also error
}

func (s *sentinel) Error() string        { return s.msg }
func (s *sentinel) Is(target error) bool { return target == s.also }

// GoogleJWKSURL is where Google publishes the keys that sign its OIDC
// tokens.
const GoogleJWKSURL = "https://www.googleapis.com/oauth2/v3/certs"

// GoogleIssuers are the issuers of Google-signed OIDC tokens.
var GoogleIssuers = []string{"accounts.google.com", "https://accounts.google.com"}

// GoogleOIDC verifies the OIDC token that Pub/Sub push subscriptions and
// Eventarc triggers with a service account send as "Authorization: Bearer
// <JWT>": an RS256 signature by one of Google's published keys, a Google
// issuer, the expected audience, a time window (the token must have an
// expiry), and the email of the service account that requested it, which
// Google must have verified. Create it with NewGoogleOIDC; it is safe for
// concurrent use and caches the keys as long as Google's response allows
// (at most a day), fetching them again early only for a key id it does
// not know, at most every 30 seconds.
//
// Both the audience and the email are required: any Google account can
// obtain a Google-signed token for any audience, so the audience alone
// does not say who is calling. NewHandler refuses a GoogleOIDC without
// them, and Verify refuses every token.
type GoogleOIDC struct {
	// Audience the token must be issued for: the push subscription's
	// configured audience (by default its push endpoint URL).
	Audience string
	// Email is the service account that must have requested the token
	// (the push subscription's or the trigger's service account).
	Email string
	// Issuers accepted (default GoogleIssuers).
	Issuers []string
	// JWKSURL serves the signing keys (default GoogleJWKSURL).
	JWKSURL string
	// Client fetches the keys (default http.DefaultClient).
	Client *http.Client
	// Leeway tolerates clock skew in exp, iat and nbf (default 1 minute).
	Leeway time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time

	keys *keySet
}

// NewGoogleOIDC returns a verifier for tokens issued for audience and
// requested by the service account email: the one line that authenticates
// a Handler,
//
//	push.Options{Verifier: push.NewGoogleOIDC("https://svc-abc-uc.a.run.app/events", "pusher@my-project.iam.gserviceaccount.com")}
func NewGoogleOIDC(audience, email string) *GoogleOIDC {
	return &GoogleOIDC{Audience: audience, Email: email}
}

// Validate reports settings with which Verify would refuse every token: no
// audience or no service account email. NewHandler calls it.
func (v *GoogleOIDC) Validate() error {
	switch {
	case v == nil:
		return errors.New("Options.Verifier is a nil *GoogleOIDC")
	case v.Audience == "":
		return errors.New("GoogleOIDC.Audience is empty: set the audience of the push subscription or trigger (by default its push endpoint URL)")
	case v.Email == "":
		return errors.New("GoogleOIDC.Email is empty: set the service account the push subscription or trigger authenticates as (any Google account can obtain a token for an audience)")
	}
	return nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// audience is the aud claim: a string or an array of strings.
type audience []string

// UnmarshalJSON reads a string or an array of strings.
func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

type claims struct {
	Iss           string   `json:"iss"`
	Aud           audience `json:"aud"`
	Exp           *int64   `json:"exp"`
	Iat           *int64   `json:"iat"`
	Nbf           *int64   `json:"nbf"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
}

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnauthorized}, args...)...)
}

// Verify implements Verifier.
func (v *GoogleOIDC) Verify(ctx context.Context, r *http.Request) error {
	if err := v.Validate(); err != nil {
		return unauthorized("verifier not configured: %v", err)
	}
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return unauthorized("no bearer token")
	}
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return unauthorized("token is not a JWT")
	}
	var h jwtHeader
	if err := decodeSegment(parts[0], &h); err != nil {
		return unauthorized("token header: %v", err)
	}
	if h.Alg != "RS256" {
		return unauthorized("token algorithm %q is not RS256", h.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return unauthorized("token signature is not base64url")
	}
	key, err := v.keySet().key(ctx, h.Kid)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return unauthorized("token signature does not verify")
	}
	var c claims
	if err := decodeSegment(parts[1], &c); err != nil {
		return unauthorized("token claims: %v", err)
	}
	return v.check(&c)
}

func (v *GoogleOIDC) check(c *claims) error {
	issuers := v.Issuers
	if len(issuers) == 0 {
		issuers = GoogleIssuers
	}
	if !slices.Contains(issuers, c.Iss) {
		return unauthorized("issuer %q is not %s", c.Iss, strings.Join(issuers, " or "))
	}
	if !slices.Contains(c.Aud, v.Audience) {
		return unauthorized("audience %q is not %q", strings.Join(c.Aud, ","), v.Audience)
	}
	now, leeway := time.Now(), v.Leeway
	if v.Now != nil {
		now = v.Now()
	}
	leeway = cmp.Or(leeway, time.Minute)
	switch {
	case c.Exp == nil:
		return unauthorized("token has no expiry")
	case now.After(time.Unix(*c.Exp, 0).Add(leeway)):
		return unauthorized("token expired at %v", time.Unix(*c.Exp, 0).UTC())
	case c.Iat != nil && time.Unix(*c.Iat, 0).After(now.Add(leeway)):
		return unauthorized("token issued in the future (%v)", time.Unix(*c.Iat, 0).UTC())
	case c.Nbf != nil && time.Unix(*c.Nbf, 0).After(now.Add(leeway)):
		return unauthorized("token not valid before %v", time.Unix(*c.Nbf, 0).UTC())
	}
	if c.Email != v.Email {
		return unauthorized("token email %q is not %q", c.Email, v.Email)
	}
	if !c.EmailVerified {
		return unauthorized("token email %q is not verified", c.Email)
	}
	return nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return nil
}
