package eventgrid

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus/internal/jwtverify"
)

// EventGridAppID is the application (client) ID of Microsoft.EventGrid,
// the first-party application whose tokens Event Grid sends to endpoints
// protected by Microsoft Entra ID. EntraID accepts tokens of this
// application only, unless told otherwise.
const EventGridAppID = "4962773b-9cdb-44cf-a8bf-237846a00ab7"

// ErrKeysUnavailable is matched by the errors of an EntraID that cannot
// fetch the tenant's signing keys. A Webhook answers such a request 503, so
// Event Grid retries it, rather than 401, which it does not retry.
var ErrKeysUnavailable = errors.New("eventgrid: token signing keys unavailable")

// EntraID is a TokenVerifier for the Microsoft Entra ID access tokens Event
// Grid sends to a webhook whose event subscription uses Microsoft Entra ID
// delivery authentication. With BearerToken it authenticates a Webhook in
// one line:
//
//	eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(tenantID, "api://my-webhook")}}
//
// A token is accepted when it is a JWT signed with RS256 by one of the
// tenant's published keys (discovered from its OpenID configuration,
// fetched and cached), its issuer is the tenant's (v1 or v2 tokens), its
// audience is one of Audiences, it has not expired (nor is it used before
// its nbf or iat), the application that obtained it (the appid claim of v1
// tokens, azp of v2) is one of AppIDs (Event Grid's by default), and, when
// Roles is set, it carries one of those app roles.
//
// Make it with NewEntraID and use it by pointer; it is safe for concurrent
// use. NewWebhook refuses one without a tenant or an audience.
type EntraID struct {
	// TenantID is the directory (tenant) ID of the webhook's Microsoft
	// Entra application.
	TenantID string
	// Audiences accepted in the aud claim: the webhook application's
	// Application ID URI (api://...) or its client ID, as the event
	// subscription's "Microsoft Entra application ID or URI" names it.
	Audiences []string
	// AppIDs are the applications whose tokens are accepted (appid or azp
	// claim); default EventGridAppID.
	AppIDs []string
	// Roles, when set, are app roles of which the token must carry one
	// (roles claim), such as the AzureEventGridSecureWebhookSubscriber role
	// that Microsoft's setup scripts assign to Event Grid.
	Roles []string
	// Issuers accepted; default the tenant's v1 and v2 issuers in the
	// global Azure cloud, https://sts.windows.net/TENANT/ and
	// https://login.microsoftonline.com/TENANT/v2.0. Set them (with
	// OpenIDConfigurationURL) for other clouds.
	Issuers []string
	// OpenIDConfigurationURL is where the tenant's jwks_uri is discovered;
	// default
	// https://login.microsoftonline.com/TENANT/v2.0/.well-known/openid-configuration.
	OpenIDConfigurationURL string
	// JWKSURL serves the signing keys; when set, no discovery is made.
	JWKSURL string
	// Client fetches the configuration and the keys (default
	// http.DefaultClient).
	Client *http.Client
	// Leeway tolerates clock skew in exp, nbf and iat (default 5 minutes,
	// as Microsoft's libraries allow).
	Leeway time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time

	keysOnce sync.Once
	keys     *jwtverify.Keys
}

// NewEntraID returns a verifier for tokens of the tenant tenantID issued for
// one of audiences to Event Grid.
func NewEntraID(tenantID string, audiences ...string) *EntraID {
	return &EntraID{TenantID: tenantID, Audiences: audiences}
}

// Validate reports settings with which VerifyToken would refuse every
// token: no tenant (nor issuers and keys of its own) or no audience.
func (v *EntraID) Validate() error {
	switch {
	case v == nil:
		return errors.New("the verifier is a nil *EntraID")
	case v.TenantID == "" && len(v.Issuers) == 0:
		return errors.New("EntraID.TenantID is empty: set the directory (tenant) ID of the webhook's application")
	case v.TenantID == "" && v.OpenIDConfigurationURL == "" && v.JWKSURL == "":
		return errors.New("EntraID.TenantID is empty: set it, or OpenIDConfigurationURL or JWKSURL, so the signing keys can be found")
	case len(v.Audiences) == 0 || slices.Contains(v.Audiences, ""):
		return errors.New("EntraID.Audiences is empty: set the webhook application's Application ID URI or client ID")
	}
	return nil
}

func (v *EntraID) issuers() []string {
	if len(v.Issuers) > 0 {
		return v.Issuers
	}
	return []string{"https://sts.windows.net/" + v.TenantID + "/", "https://login.microsoftonline.com/" + v.TenantID + "/v2.0"}
}

func (v *EntraID) appIDs() []string {
	if len(v.AppIDs) > 0 {
		return v.AppIDs
	}
	return []string{EventGridAppID}
}

func (v *EntraID) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// entraClaims are the claims of an Entra ID access token that are checked.
type entraClaims struct {
	jwtverify.Times
	Iss   string             `json:"iss"`
	Aud   jwtverify.Audience `json:"aud"`
	AppID string             `json:"appid"`
	Azp   string             `json:"azp"`
	Roles []string           `json:"roles"`
}

// entraErrors are the sentinels of EntraID's errors.
var entraErrors = jwtverify.Errors{Refused: ErrUnauthenticated, Unavailable: ErrKeysUnavailable}

func refused(format string, args ...any) error { return entraErrors.Refuse(format, args...) }

// VerifyToken implements TokenVerifier. Its errors match ErrUnauthenticated
// for a token it refuses and ErrKeysUnavailable when it cannot decide now.
func (v *EntraID) VerifyToken(ctx context.Context, token string) error {
	if err := v.Validate(); err != nil {
		return refused("verifier not configured: %v", err)
	}
	var c entraClaims
	if err := jwtverify.Verify(ctx, token, v.keySet(), &c); err != nil {
		return err
	}
	return v.checkClaims(&c)
}

func (v *EntraID) checkClaims(c *entraClaims) error {
	if iss := v.issuers(); !slices.Contains(iss, c.Iss) {
		return refused("issuer %q is not %s", c.Iss, strings.Join(iss, " or "))
	}
	if !slices.ContainsFunc(c.Aud, func(a string) bool { return slices.Contains(v.Audiences, a) }) {
		return refused("audience %q is not %s", strings.Join(c.Aud, ","), strings.Join(v.Audiences, " or "))
	}
	if err := c.Times.Check(entraErrors, v.now(), cmp.Or(v.Leeway, 5*time.Minute)); err != nil {
		return err
	}
	app := c.Azp
	if app == "" {
		app = c.AppID
	}
	if ids := v.appIDs(); !slices.Contains(ids, app) {
		return refused("token was obtained by application %q, not %s", app, strings.Join(ids, " or "))
	}
	if len(v.Roles) > 0 && !slices.ContainsFunc(c.Roles, func(r string) bool { return slices.Contains(v.Roles, r) }) {
		return refused("token carries none of the roles %s", strings.Join(v.Roles, ", "))
	}
	return nil
}

// keySet returns the verifier's cache of the tenant's signing keys, found
// at JWKSURL or through the tenant's OpenID configuration.
func (v *EntraID) keySet() *jwtverify.Keys {
	v.keysOnce.Do(func() {
		v.keys = &jwtverify.Keys{
			Client: v.Client, Now: v.Now, Errors: entraErrors,
			DefaultTTL: 24 * time.Hour, MaxTTL: 24 * time.Hour,
			// Tokens with made-up key ids must not make every request fetch.
			MinRefetch: 30 * time.Second,
		}
		v.keys.Locate = func(ctx context.Context) (string, error) {
			if v.JWKSURL != "" {
				return v.JWKSURL, nil
			}
			return v.discover(ctx)
		}
	})
	return v.keys
}

// discover reads jwks_uri from the tenant's OpenID configuration.
func (v *EntraID) discover(ctx context.Context) (string, error) {
	url := v.OpenIDConfigurationURL
	if url == "" {
		url = "https://login.microsoftonline.com/" + v.TenantID + "/v2.0/.well-known/openid-configuration"
	}
	var conf struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := v.keys.GetJSON(ctx, url, &conf); err != nil {
		return "", err
	}
	if conf.JWKSURI == "" {
		return "", fmt.Errorf("%w: the OpenID configuration at %s has no jwks_uri", ErrKeysUnavailable, url)
	}
	return conf.JWKSURI, nil
}
