package push_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"
)

// standInGoogle serves a JSON Web Key Set as Google publishes its OIDC
// signing keys, and signs tokens with its key, for examples that run
// without Google.
type standInGoogle struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newStandInGoogle() *standInGoogle {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	g := &standInGoogle{key: key}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "stand-in",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	return g
}

func (g *standInGoogle) KeysURL() string { return g.srv.URL }

func (g *standInGoogle) Close() { g.srv.Close() }

// Token returns an OIDC token for audience requested by the service account
// email, as Google issues them to Pub/Sub push and Eventarc.
func (g *standInGoogle) Token(audience, email string) string {
	now := time.Now()
	segment := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := segment(map[string]string{"alg": "RS256", "kid": "stand-in", "typ": "JWT"}) + "." +
		segment(map[string]any{"iss": "https://accounts.google.com", "aud": audience, "email": email, "email_verified": true,
			"sub": "109876543210", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, g.key, crypto.SHA256, digest[:])
	if err != nil {
		panic(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}
