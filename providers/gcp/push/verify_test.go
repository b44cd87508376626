package push_test

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

	"github.com/crossbus/crossbus/providers/gcp/push"
)

var (
	keysOnce sync.Once
	keyA     *rsa.PrivateKey
	keyB     *rsa.PrivateKey
)

// testKeys generates two RSA keys once per test binary.
func testKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		keyA, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			keyB, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err != nil {
			panic(err)
		}
	})
	return keyA, keyB
}

// jwksServer serves a JSON Web Key Set of the given keys, which a test may
// change, and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	down    atomic.Bool
	fetches atomic.Int32
}

func newJWKS(t *testing.T, keys map[string]*rsa.PublicKey) *jwksServer {
	j := &jwksServer{keys: keys}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		if j.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range j.keys {
			set.Keys = append(set.Keys, map[string]string{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwksServer) set(keys map[string]*rsa.PublicKey) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

// sign makes an RS256 JWT, as Google signs push tokens.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"})
	body := enc(claims)
	digest := sha256.Sum256([]byte(head + "." + body))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return head + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig)
}

const (
	audience = "https://resizer-abc123-uc.a.run.app/events/uploads"
	pusher   = "push-invoker@my-project.iam.gserviceaccount.com"
)

func goodClaims(now time.Time) map[string]any {
	return map[string]any{"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890",
		"email": pusher, "email_verified": true, "sub": "1234567890",
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(59 * time.Minute).Unix()}
}

func with(c map[string]any, k string, v any) map[string]any {
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

func TestGoogleOIDCVerifier(t *testing.T) {
	a, b := testKeys(t)
	jwks := newJWKS(t, map[string]*rsa.PublicKey{"key-a": &a.PublicKey})
	v := push.NewGoogleOIDC(audience, pusher)
	v.JWKSURL = jwks.URL
	f := newFixture(t, push.Options{Verifier: v})
	now := time.Now()
	event := map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
	post := func(token string) int {
		h := map[string]string{}
		for k, val := range event {
			h[k] = val
		}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		return f.post(t, h, "").StatusCode
	}

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"valid token", sign(t, a, "key-a", goodClaims(now)), http.StatusNoContent},
		{"issuer without scheme", sign(t, a, "key-a", with(goodClaims(now), "iss", "accounts.google.com")), http.StatusNoContent},
		{"audience in a list", sign(t, a, "key-a", with(goodClaims(now), "aud", []string{"other", audience})), http.StatusNoContent},
		{"no token", "", http.StatusUnauthorized},
		{"not a JWT", "abc.def", http.StatusUnauthorized},
		{"signed by an unknown key", sign(t, b, "key-a", goodClaims(now)), http.StatusUnauthorized},
		{"unknown key id", sign(t, b, "key-b", goodClaims(now)), http.StatusUnauthorized},
		{"wrong audience", sign(t, a, "key-a", with(goodClaims(now), "aud", "https://elsewhere.example")), http.StatusUnauthorized},
		{"wrong issuer", sign(t, a, "key-a", with(goodClaims(now), "iss", "https://evil.example")), http.StatusUnauthorized},
		{"expired", sign(t, a, "key-a", with(goodClaims(now), "exp", now.Add(-2*time.Minute).Unix())), http.StatusUnauthorized},
		{"no expiry", sign(t, a, "key-a", with(goodClaims(now), "exp", nil)), http.StatusUnauthorized},
		{"issued in the future", sign(t, a, "key-a", with(goodClaims(now), "iat", now.Add(time.Hour).Unix())), http.StatusUnauthorized},
		{"other service account", sign(t, a, "key-a", with(goodClaims(now), "email", "someone@example.com")), http.StatusUnauthorized},
		{"unverified email", sign(t, a, "key-a", with(goodClaims(now), "email_verified", false)), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.status, post(tc.token))
		})
	}
	assert.Len(t, f.events(), 3, "only the verified requests reached the handler")
	assert.Equal(t, int32(1), jwks.fetches.Load(), "the key set is fetched once and cached (unknown key ids within the refetch window do not refetch)")
}

func TestGoogleOIDCVerifierFollowsKeyRotationAndOutages(t *testing.T) {
	a, b := testKeys(t)
	jwks := newJWKS(t, map[string]*rsa.PublicKey{"key-a": &a.PublicKey})
	clock := time.Now()
	var mu sync.Mutex
	v := push.NewGoogleOIDC(audience, pusher)
	v.JWKSURL = jwks.URL
	v.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	verify := func(key *rsa.PrivateKey, kid string) error {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", "Bearer "+sign(t, key, kid, goodClaims(v.Now())))
		return v.Verify(context.Background(), r)
	}
	require.NoError(t, verify(a, "key-a"))

	// Google rotates: key-b appears. After the refetch window the verifier
	// learns it without waiting for the cache to expire.
	jwks.set(map[string]*rsa.PublicKey{"key-a": &a.PublicKey, "key-b": &b.PublicKey})
	require.ErrorIs(t, verify(b, "key-b"), push.ErrUnauthorized, "within the refetch window an unknown key id is refused")
	advance(31 * time.Second)
	require.NoError(t, verify(b, "key-b"))

	// The key endpoint fails once the cache has expired: the verifier
	// cannot decide, which the handler answers with 503 (retry), not 401.
	jwks.down.Store(true)
	advance(2 * time.Hour)
	err := verify(a, "key-a")
	require.ErrorIs(t, err, push.ErrKeysUnavailable)
	assert.NotErrorIs(t, err, push.ErrUnauthorized)

	f := newFixture(t, push.Options{Verifier: v})
	resp := f.post(t, map[string]string{"Authorization": "Bearer " + sign(t, a, "key-a", goodClaims(v.Now())),
		"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, "")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// A verifier without an audience or a service account would let any
// Google account in: Verify refuses every token (and NewHandler refuses the
// verifier, see TestNewHandlerRefusesAGoogleOIDCThatWouldLetAnyoneIn).
func TestGoogleOIDCWithoutAudienceOrEmailRefusesEverything(t *testing.T) {
	a, _ := testKeys(t)
	jwks := newJWKS(t, map[string]*rsa.PublicKey{"key-a": &a.PublicKey})
	for _, v := range []*push.GoogleOIDC{push.NewGoogleOIDC("", pusher), push.NewGoogleOIDC(audience, ""), push.NewGoogleOIDC("", "")} {
		v.JWKSURL = jwks.URL
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", "Bearer "+sign(t, a, "key-a", goodClaims(time.Now())))
		err := v.Verify(context.Background(), r)
		assert.ErrorIs(t, err, push.ErrUnauthorized, "audience %q email %q", v.Audience, v.Email)
		assert.ErrorContains(t, err, "not configured")
	}
	assert.Zero(t, jwks.fetches.Load(), "no key is fetched for a verifier that cannot accept anything")
}
