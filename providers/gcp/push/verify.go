package push

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/jwtverify"
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

	keysOnce sync.Once
	keys     *jwtverify.Keys
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

type claims struct {
	jwtverify.Times
	Iss           string             `json:"iss"`
	Aud           jwtverify.Audience `json:"aud"`
	Email         string             `json:"email"`
	EmailVerified bool               `json:"email_verified"`
}

// googleErrors are the sentinels of GoogleOIDC's errors.
var googleErrors = jwtverify.Errors{Refused: ErrUnauthorized, Unavailable: ErrKeysUnavailable}

func unauthorized(format string, args ...any) error { return googleErrors.Refuse(format, args...) }

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
	var c claims
	if err := jwtverify.Verify(ctx, token, v.keySet(), &c); err != nil {
		return err
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
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if err := c.Times.Check(googleErrors, now, cmp.Or(v.Leeway, time.Minute)); err != nil {
		return err
	}
	if c.Email != v.Email {
		return unauthorized("token email %q is not %q", c.Email, v.Email)
	}
	if !c.EmailVerified {
		return unauthorized("token email %q is not verified", c.Email)
	}
	return nil
}

// keySet returns the verifier's cache of Google's signing keys.
func (v *GoogleOIDC) keySet() *jwtverify.Keys {
	v.keysOnce.Do(func() {
		url := cmp.Or(v.JWKSURL, GoogleJWKSURL)
		v.keys = &jwtverify.Keys{
			Locate: func(context.Context) (string, error) { return url, nil },
			Client: v.Client, Now: v.Now, Errors: googleErrors,
			DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour,
			// Tokens with made-up key ids must not make every request fetch.
			MinRefetch: 30 * time.Second,
		}
	})
	return v.keys
}
