package eventgrid

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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

	mu      sync.Mutex
	jwksURL string
	keys    map[string]*rsa.PublicKey
	expires time.Time
	fetched time.Time
}

// NewEntraID returns a verifier for tokens of the tenant tenantID issued for
// one of audiences to Event Grid.
func NewEntraID(tenantID string, audiences ...string) *EntraID {
	return &EntraID{TenantID: tenantID, Audiences: audiences}
}

const (
	entraDefaultKeysTTL = 24 * time.Hour
	entraMaxKeysTTL     = 24 * time.Hour
	// entraMinRefetch stops tokens with made-up key ids from making every
	// request fetch the keys.
	entraMinRefetch    = 30 * time.Second
	entraMaxFetchBytes = 1 << 20
)

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

func (v *EntraID) client() *http.Client {
	if v.Client != nil {
		return v.Client
	}
	return http.DefaultClient
}

// entraClaims are the claims of an Entra ID access token that are checked.
type entraClaims struct {
	Iss   string        `json:"iss"`
	Aud   stringOrArray `json:"aud"`
	Exp   *int64        `json:"exp"`
	Nbf   *int64        `json:"nbf"`
	Iat   *int64        `json:"iat"`
	AppID string        `json:"appid"`
	Azp   string        `json:"azp"`
	Roles []string      `json:"roles"`
}

// stringOrArray is a claim that is a string or an array of strings.
type stringOrArray []string

// UnmarshalJSON reads a string or an array of strings.
func (a *stringOrArray) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = stringOrArray{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("neither a string nor an array of strings")
	}
	*a = many
	return nil
}

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnauthenticated}, args...)...)
}

// VerifyToken implements TokenVerifier. Its errors match ErrUnauthenticated
// for a token it refuses and ErrKeysUnavailable when it cannot decide now.
func (v *EntraID) VerifyToken(ctx context.Context, token string) error {
	if err := v.Validate(); err != nil {
		return refused("verifier not configured: %v", err)
	}
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return refused("token is not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeJWTSegment(parts[0], &header); err != nil {
		return refused("token header: %v", err)
	}
	if header.Alg != "RS256" {
		return refused("token algorithm %q is not RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return refused("token signature is not base64url")
	}
	key, err := v.key(ctx, header.Kid)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return refused("token signature does not verify")
	}
	var c entraClaims
	if err := decodeJWTSegment(parts[1], &c); err != nil {
		return refused("token claims: %v", err)
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
	now, leeway := v.now(), v.Leeway
	if leeway == 0 {
		leeway = 5 * time.Minute
	}
	switch {
	case c.Exp == nil:
		return refused("token has no expiry")
	case now.After(time.Unix(*c.Exp, 0).Add(leeway)):
		return refused("token expired at %v", time.Unix(*c.Exp, 0).UTC())
	case c.Nbf != nil && time.Unix(*c.Nbf, 0).After(now.Add(leeway)):
		return refused("token not valid before %v", time.Unix(*c.Nbf, 0).UTC())
	case c.Iat != nil && time.Unix(*c.Iat, 0).After(now.Add(leeway)):
		return refused("token issued in the future (%v)", time.Unix(*c.Iat, 0).UTC())
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

func decodeJWTSegment(s string, into any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return nil
}

// key returns the signing key kid, fetching the key set when the cached one
// has expired, or does not know kid and was fetched long enough ago.
func (v *EntraID) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	key, known := v.keys[kid]
	expired := !now.Before(v.expires)
	if known && !expired {
		return key, nil
	}
	if expired || now.Sub(v.fetched) >= entraMinRefetch {
		if err := v.fetchKeys(ctx, now); err != nil {
			return nil, err
		}
		key, known = v.keys[kid]
	}
	if !known {
		return nil, refused("token signed with unknown key id %q", kid)
	}
	return key, nil
}

func (v *EntraID) fetchKeys(ctx context.Context, now time.Time) error {
	v.fetched = now
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := v.JWKSURL
	if url == "" {
		if v.jwksURL == "" {
			var err error
			if v.jwksURL, err = v.discover(ctx); err != nil {
				return err
			}
		}
		url = v.jwksURL
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	header, err := v.getJSON(ctx, url, &set)
	if err != nil {
		v.jwksURL = "" // discover again next time: the keys may have moved
		return err
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if pub, err := rsaPublicKey(k.N, k.E); err == nil {
			keys[k.Kid] = pub
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: %s has no RSA signing keys", ErrKeysUnavailable, url)
	}
	v.keys = keys
	v.expires = now.Add(keysTTL(header.Get("Cache-Control")))
	return nil
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
	if _, err := v.getJSON(ctx, url, &conf); err != nil {
		return "", err
	}
	if conf.JWKSURI == "" {
		return "", fmt.Errorf("%w: the OpenID configuration at %s has no jwks_uri", ErrKeysUnavailable, url)
	}
	return conf.JWKSURI, nil
}

func (v *EntraID) getJSON(ctx context.Context, url string, into any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	resp, err := v.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrKeysUnavailable, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: %s", ErrKeysUnavailable, url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, entraMaxFetchBytes)).Decode(into); err != nil {
		return nil, fmt.Errorf("%w: GET %s: not the expected JSON: %v", ErrKeysUnavailable, url, err)
	}
	return resp.Header, nil
}

func rsaPublicKey(n64, e64 string) (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.DecodeString(n64)
	if err != nil {
		return nil, err
	}
	e, err := base64.RawURLEncoding.DecodeString(e64)
	if err != nil {
		return nil, err
	}
	if len(e) == 0 || len(e) > 4 || len(n) < 256 {
		return nil, errors.New("unusable modulus or exponent")
	}
	exp := 0
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

// keysTTL reads max-age from a Cache-Control header.
func keysTTL(cacheControl string) time.Duration {
	for _, d := range strings.Split(cacheControl, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		if s, err := strconv.Atoi(val); err == nil && s > 0 {
			return min(time.Duration(s)*time.Second, entraMaxKeysTTL)
		}
	}
	return entraDefaultKeysTTL
}
