package eventgrid_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/providers/azure/eventgrid"
)

const (
	tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	hookURI  = "api://orders-webhook"
	hookApp  = "11111111-2222-3333-4444-555555555555"
	intruder = "99999999-8888-7777-6666-555555555555"
)

var (
	signingKeysOnce sync.Once
	keyOne, keyTwo  *rsa.PrivateKey
)

// signingKeys generates two RSA keys once per test binary.
func signingKeys() (*rsa.PrivateKey, *rsa.PrivateKey) {
	signingKeysOnce.Do(func() {
		var err error
		if keyOne, err = rsa.GenerateKey(rand.Reader, 2048); err == nil {
			keyTwo, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err != nil {
			panic(err)
		}
	})
	return keyOne, keyTwo
}

// identityServer stands in for the Microsoft identity platform: an OpenID
// configuration pointing at a JSON Web Key Set, which a test may change or
// take down, counting the requests for each.
type identityServer struct {
	*httptest.Server
	mu                 sync.Mutex
	keys               map[string]*rsa.PublicKey
	down               atomic.Bool
	configs, keyFetchs atomic.Int32
}

func newIdentityServer(t *testing.T, keys map[string]*rsa.PublicKey) *identityServer {
	s := &identityServer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("/"+tenant+"/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.configs.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   "https://login.microsoftonline.com/" + tenant + "/v2.0",
			"jwks_uri": s.URL + "/" + tenant + "/discovery/v2.0/keys",
		})
	})
	mux.HandleFunc("/"+tenant+"/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		s.keyFetchs.Add(1)
		if s.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range s.keys {
			set.Keys = append(set.Keys, map[string]string{"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid,
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		}
		w.Header().Set("Cache-Control", "max-age=86400, private")
		_ = json.NewEncoder(w).Encode(set)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *identityServer) configURL() string {
	return s.URL + "/" + tenant + "/v2.0/.well-known/openid-configuration"
}

func (s *identityServer) setKeys(keys map[string]*rsa.PublicKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// entraToken makes an RS256 JWT as the Microsoft identity platform signs
// access tokens.
func entraToken(t testing.TB, key *rsa.PrivateKey, kid, alg string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]string{"typ": "JWT", "alg": alg, "kid": kid, "x5t": kid}) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// v1Claims are the claims of a v1 access token Event Grid obtains for the
// webhook application.
func v1Claims(now time.Time) map[string]any {
	return map[string]any{"aud": hookURI, "iss": "https://sts.windows.net/" + tenant + "/", "appid": eventgrid.EventGridAppID,
		"tid": tenant, "ver": "1.0", "roles": []string{"AzureEventGridSecureWebhookSubscriber"}, "oid": "0af4d2fc",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
}

// v2Claims are those of a v2 access token (azp instead of appid, the
// client ID as audience).
func v2Claims(now time.Time) map[string]any {
	return map[string]any{"aud": hookApp, "iss": "https://login.microsoftonline.com/" + tenant + "/v2.0", "azp": eventgrid.EventGridAppID,
		"tid": tenant, "ver": "2.0", "iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
}

func claimsWith(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestEntraIDVerifier(t *testing.T) {
	one, two := signingKeys()
	ids := newIdentityServer(t, map[string]*rsa.PublicKey{"kid-1": &one.PublicKey})
	v := eventgrid.NewEntraID(tenant, hookURI, hookApp)
	v.OpenIDConfigurationURL = ids.configURL()
	now := time.Now()
	ctx := context.Background()

	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"v1 token for the Application ID URI", entraToken(t, one, "kid-1", "RS256", v1Claims(now)), true},
		{"v2 token for the client ID", entraToken(t, one, "kid-1", "RS256", v2Claims(now)), true},
		{"audience in a list", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "aud", []string{"api://other", hookURI})), true},
		{"expired within the leeway", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "exp", now.Add(-time.Minute).Unix())), true},
		{"not a JWT", "opaque-token", false},
		{"signed by another key", entraToken(t, two, "kid-1", "RS256", v1Claims(now)), false},
		{"unknown key id", entraToken(t, two, "kid-2", "RS256", v1Claims(now)), false},
		{"another algorithm", entraToken(t, one, "kid-1", "RS384", v1Claims(now)), false},
		{"another audience", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "aud", "https://graph.microsoft.com")), false},
		{"another tenant", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "iss", "https://sts.windows.net/00000000-0000-0000-0000-000000000000/")), false},
		{"expired", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "exp", now.Add(-time.Hour).Unix())), false},
		{"no expiry", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "exp", nil)), false},
		{"not valid yet", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "nbf", now.Add(time.Hour).Unix())), false},
		{"issued in the future", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "iat", now.Add(time.Hour).Unix())), false},
		{"obtained by another application (v1)", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "appid", intruder)), false},
		{"obtained by another application (v2)", entraToken(t, one, "kid-1", "RS256", claimsWith(v2Claims(now), "azp", intruder)), false},
		{"no application", entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "appid", nil)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.VerifyToken(ctx, tc.token)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, eventgrid.ErrUnauthenticated)
			assert.NotErrorIs(t, err, eventgrid.ErrKeysUnavailable)
		})
	}
	assert.Equal(t, int32(1), ids.configs.Load(), "the OpenID configuration is read once")
	assert.Equal(t, int32(1), ids.keyFetchs.Load(), "the keys are fetched once and cached (unknown key ids within the refetch window do not refetch)")
}

func TestEntraIDRolesAndCallers(t *testing.T) {
	one, _ := signingKeys()
	ids := newIdentityServer(t, map[string]*rsa.PublicKey{"kid-1": &one.PublicKey})
	now := time.Now()
	ctx := context.Background()

	v := eventgrid.NewEntraID(tenant, hookURI)
	v.JWKSURL = ids.URL + "/" + tenant + "/discovery/v2.0/keys"
	v.Roles = []string{"AzureEventGridSecureWebhookSubscriber"}
	require.NoError(t, v.VerifyToken(ctx, entraToken(t, one, "kid-1", "RS256", v1Claims(now))))
	require.ErrorIs(t, v.VerifyToken(ctx, entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "roles", []string{"Reader"}))), eventgrid.ErrUnauthenticated)
	require.ErrorIs(t, v.VerifyToken(ctx, entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "roles", nil))), eventgrid.ErrUnauthenticated)
	assert.Zero(t, ids.configs.Load(), "with JWKSURL set nothing is discovered")

	v.AppIDs = []string{hookApp}
	require.NoError(t, v.VerifyToken(ctx, entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "appid", hookApp))))
	require.ErrorIs(t, v.VerifyToken(ctx, entraToken(t, one, "kid-1", "RS256", v1Claims(now))), eventgrid.ErrUnauthenticated,
		"AppIDs replaces Event Grid's")
}

func TestEntraIDFollowsKeyRotationAndOutages(t *testing.T) {
	one, two := signingKeys()
	ids := newIdentityServer(t, map[string]*rsa.PublicKey{"kid-1": &one.PublicKey})
	var mu sync.Mutex
	clock := time.Now()
	v := eventgrid.NewEntraID(tenant, hookURI)
	v.OpenIDConfigurationURL = ids.configURL()
	v.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	verify := func(key *rsa.PrivateKey, kid string) error {
		return v.VerifyToken(context.Background(), entraToken(t, key, kid, "RS256", v1Claims(v.Now())))
	}
	require.NoError(t, verify(one, "kid-1"))

	// The tenant rolls its keys: kid-2 appears. After the refetch window
	// the verifier learns it without waiting for the cache to expire.
	ids.setKeys(map[string]*rsa.PublicKey{"kid-1": &one.PublicKey, "kid-2": &two.PublicKey})
	require.ErrorIs(t, verify(two, "kid-2"), eventgrid.ErrUnauthenticated, "within the refetch window an unknown key id is refused")
	advance(31 * time.Second)
	require.NoError(t, verify(two, "kid-2"))

	// The keys cannot be fetched once the cache has expired: the verifier
	// cannot decide, which a Webhook answers 503 (Event Grid retries), not
	// 401.
	ids.down.Store(true)
	advance(25 * time.Hour)
	err := verify(one, "kid-1")
	require.ErrorIs(t, err, eventgrid.ErrKeysUnavailable)

	p := newPushEnv(t, eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: v}})
	p.do(t, pushReq{body: cloudEventJSON("a"), header: map[string]string{"Content-Type": "application/cloudevents+json",
		"Authorization": "Bearer " + entraToken(t, one, "kid-1", "RS256", v1Claims(v.Now()))}, expects: http.StatusServiceUnavailable})

	ids.down.Store(false)
	advance(time.Minute)
	p.do(t, pushReq{body: cloudEventJSON("a"), header: map[string]string{"Content-Type": "application/cloudevents+json",
		"Authorization": "Bearer " + entraToken(t, one, "kid-1", "RS256", v1Claims(v.Now()))}, expects: http.StatusOK})
	assert.Len(t, p.sink.waitFor(t, 1), 1)
}

// A webhook authenticated with Entra ID tokens, end to end.
func TestWebhookWithEntraID(t *testing.T) {
	one, two := signingKeys()
	ids := newIdentityServer(t, map[string]*rsa.PublicKey{"kid-1": &one.PublicKey})
	v := eventgrid.NewEntraID(tenant, hookURI)
	v.OpenIDConfigurationURL = ids.configURL()
	p := newPushEnv(t, eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: v}})
	now := time.Now()
	ce := func(token string) map[string]string {
		h := map[string]string{"Content-Type": "application/cloudevents+json"}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		return h
	}
	p.do(t, pushReq{body: cloudEventJSON("a"), header: ce(entraToken(t, one, "kid-1", "RS256", v1Claims(now))), expects: 200})
	p.do(t, pushReq{body: cloudEventJSON("b"), header: ce(""), expects: 401})
	p.do(t, pushReq{body: cloudEventJSON("c"), header: ce(entraToken(t, two, "kid-1", "RS256", v1Claims(now))), expects: 401})
	p.do(t, pushReq{body: cloudEventJSON("d"), header: ce(entraToken(t, one, "kid-1", "RS256", claimsWith(v1Claims(now), "appid", intruder))), expects: 401})
	p.do(t, pushReq{method: http.MethodOptions, header: map[string]string{"WebHook-Request-Origin": eventgrid.Origin,
		"Authorization": "Bearer " + entraToken(t, one, "kid-1", "RS256", v1Claims(now))}, expects: 200})
	evs := p.sink.waitFor(t, 1)
	require.Len(t, evs, 1)
	assert.Equal(t, "a", evs[0].ID())
}
