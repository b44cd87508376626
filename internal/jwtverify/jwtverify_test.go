package jwtverify

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	errRefused = errors.New("refused")
	errKeys    = errors.New("keys unavailable")
	testErrors = Errors{Refused: errRefused, Unavailable: errKeys}
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func sign(t testing.TB, key *rsa.PrivateKey, kid string, claims any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signing := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return signing + "." + b64(sig)
}

func jwks(t testing.TB, key *rsa.PrivateKey, kid string, fetches *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=600")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "kid": kid,
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestVerifyChecksTheSignatureAndCachesTheKeys(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	var fetches atomic.Int32
	srv := jwks(t, key, "k1", &fetches)
	now := time.Unix(1_800_000_000, 0)
	keys := &Keys{Locate: func(context.Context) (string, error) { return srv.URL, nil }, Now: func() time.Time { return now },
		DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour, MinRefetch: 30 * time.Second, Errors: testErrors}
	ctx := context.Background()

	var c struct {
		Times
		Aud Audience `json:"aud"`
	}
	exp := now.Add(time.Hour).Unix()
	require.NoError(t, Verify(ctx, sign(t, key, "k1", map[string]any{"aud": []string{"a", "b"}, "exp": exp}), keys, &c))
	assert.Equal(t, Audience{"a", "b"}, c.Aud)
	require.NoError(t, c.Times.Check(testErrors, now, time.Minute))

	assert.ErrorIs(t, Verify(ctx, sign(t, other, "k1", map[string]any{"exp": exp}), keys, &c), errRefused, "another key's signature")
	assert.ErrorIs(t, Verify(ctx, sign(t, key, "k2", map[string]any{"exp": exp}), keys, &c), errRefused, "an unknown key id")
	assert.ErrorIs(t, Verify(ctx, "not.a-jwt", keys, &c), errRefused)
	assert.Equal(t, int32(1), fetches.Load(), "fetched once: within the refetch window an unknown key id does not refetch")
	assert.Equal(t, 10*time.Minute, keys.ttl("public, max-age=600"))

	down := &Keys{Locate: func(context.Context) (string, error) { return "http://127.0.0.1:1/keys", nil }, Errors: testErrors}
	assert.ErrorIs(t, Verify(ctx, sign(t, key, "k1", map[string]any{"exp": exp}), down, &c), errKeys)
}

func TestTimesCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) *int64 { v := now.Add(d).Unix(); return &v }
	for name, tc := range map[string]struct {
		times Times
		ok    bool
	}{
		"valid":             {Times{Exp: at(time.Hour)}, true},
		"expired in leeway": {Times{Exp: at(-30 * time.Second)}, true},
		"no expiry":         {Times{}, false},
		"expired":           {Times{Exp: at(-time.Hour)}, false},
		"not yet valid":     {Times{Exp: at(time.Hour), Nbf: at(10 * time.Minute)}, false},
		"issued later":      {Times{Exp: at(time.Hour), Iat: at(10 * time.Minute)}, false},
	} {
		err := tc.times.Check(testErrors, now, time.Minute)
		if tc.ok {
			assert.NoError(t, err, name)
		} else {
			assert.ErrorIs(t, err, errRefused, name)
		}
	}
}

// FuzzVerify: a foreign token never panics and is refused unless it
// verifies.
func FuzzVerify(f *testing.F) {
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.AAAA")
	f.Add("")
	keys := &Keys{Locate: func(context.Context) (string, error) { return "", errKeys }, Errors: testErrors}
	f.Fuzz(func(t *testing.T, token string) {
		var c struct {
			Times
			Aud Audience `json:"aud"`
		}
		err := Verify(context.Background(), token, keys, &c)
		if err == nil || !(errors.Is(err, errRefused) || errors.Is(err, errKeys)) {
			t.Fatalf("token %q: %v", token, err)
		}
	})
}
