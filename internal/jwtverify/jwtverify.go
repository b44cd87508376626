// Package jwtverify verifies the RS256 JSON Web Tokens that clouds send to
// push endpoints (Google OIDC, Microsoft Entra ID): the signature against
// a cached JSON Web Key Set, the time window, and the claims decoded for
// the caller's own checks (issuer, audience, caller identity).
package jwtverify

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
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors are the sentinels a verifier's errors wrap: Refused for a token
// that is not accepted, Unavailable when the signing keys cannot be
// fetched (the caller cannot decide now).
type Errors struct {
	Refused     error
	Unavailable error
}

// Refuse returns an error wrapping e.Refused with the formatted reason.
func (e Errors) Refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{e.Refused}, args...)...)
}

func (e Errors) unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{e.Unavailable}, args...)...)
}

// Keys caches the RSA signing keys of a JSON Web Key Set. It keeps them as
// long as the response's Cache-Control max-age says (DefaultTTL without
// one, at most MaxTTL) and fetches them again early only for a key id it
// does not know, at most every MinRefetch. It is safe for concurrent use.
type Keys struct {
	// Locate returns the key set's URL (it may discover it); it is called
	// before a fetch until it succeeds, and again after a fetch failed.
	Locate func(ctx context.Context) (string, error)
	// Client fetches (default http.DefaultClient).
	Client *http.Client
	// Now returns the current time (default time.Now).
	Now        func() time.Time
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	MinRefetch time.Duration
	Errors     Errors

	mu      sync.Mutex
	url     string
	keys    map[string]*rsa.PublicKey
	expires time.Time
	fetched time.Time
}

// maxFetchBytes bounds a key set or configuration document.
const maxFetchBytes = 1 << 20

func (k *Keys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Key returns the key with id kid, fetching the set when the cache has
// expired, or does not know kid and was fetched long enough ago.
func (k *Keys) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	key, known := k.keys[kid]
	expired := !now.Before(k.expires)
	if known && !expired {
		return key, nil
	}
	if expired || now.Sub(k.fetched) >= k.MinRefetch {
		if err := k.fetch(ctx, now); err != nil {
			return nil, err
		}
		key, known = k.keys[kid]
	}
	if !known {
		return nil, k.Errors.Refuse("token signed with unknown key id %q", kid)
	}
	return key, nil
}

func (k *Keys) fetch(ctx context.Context, now time.Time) error {
	k.fetched = now
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if k.url == "" {
		url, err := k.Locate(ctx)
		if err != nil {
			return err
		}
		k.url = url
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
	header, err := k.GetJSON(ctx, k.url, &set)
	if err != nil {
		k.url = "" // locate again next time: the keys may have moved
		return err
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kty != "RSA" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		if pub, err := rsaPublicKey(j.N, j.E); err == nil {
			keys[j.Kid] = pub
		}
	}
	if len(keys) == 0 {
		return k.Errors.unavailable("%s has no RSA signing keys", k.url)
	}
	k.keys = keys
	k.expires = now.Add(k.ttl(header.Get("Cache-Control")))
	return nil
}

// GetJSON fetches url and decodes its JSON body into into; its errors wrap
// Errors.Unavailable.
func (k *Keys) GetJSON(ctx context.Context, url string, into any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, k.Errors.unavailable("%v", err)
	}
	client := k.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, k.Errors.unavailable("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, k.Errors.unavailable("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFetchBytes)).Decode(into); err != nil {
		return nil, k.Errors.unavailable("GET %s: not the expected JSON: %v", url, err)
	}
	return resp.Header, nil
}

// ttl reads max-age from a Cache-Control header.
func (k *Keys) ttl(cacheControl string) time.Duration {
	for _, d := range strings.Split(cacheControl, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		if s, err := strconv.Atoi(val); err == nil && s > 0 {
			return min(time.Duration(s)*time.Second, k.MaxTTL)
		}
	}
	return k.DefaultTTL
}

// rsaPublicKey builds a key of at least 2048 bits from a JWK's n and e.
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

// Verify checks that token is a JWT signed with RS256 by one of keys and
// decodes its claims into claims. Its errors wrap keys.Errors' sentinels.
func Verify(ctx context.Context, token string, keys *Keys, claims any) error {
	refuse := keys.Errors.Refuse
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return refuse("token is not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return refuse("token header: %v", err)
	}
	if header.Alg != "RS256" {
		return refuse("token algorithm %q is not RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return refuse("token signature is not base64url")
	}
	key, err := keys.Key(ctx, header.Kid)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return refuse("token signature does not verify")
	}
	if err := decodeSegment(parts[1], claims); err != nil {
		return refuse("token claims: %v", err)
	}
	return nil
}

func decodeSegment(s string, into any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return nil
}

// Times are a token's time claims.
type Times struct {
	Exp *int64 `json:"exp"`
	Nbf *int64 `json:"nbf"`
	Iat *int64 `json:"iat"`
}

// Check refuses a token without an expiry, expired, not yet valid (nbf) or
// issued in the future (iat) at now, each with leeway for clock skew.
func (t Times) Check(e Errors, now time.Time, leeway time.Duration) error {
	switch {
	case t.Exp == nil:
		return e.Refuse("token has no expiry")
	case now.After(time.Unix(*t.Exp, 0).Add(leeway)):
		return e.Refuse("token expired at %v", time.Unix(*t.Exp, 0).UTC())
	case t.Nbf != nil && time.Unix(*t.Nbf, 0).After(now.Add(leeway)):
		return e.Refuse("token not valid before %v", time.Unix(*t.Nbf, 0).UTC())
	case t.Iat != nil && time.Unix(*t.Iat, 0).After(now.Add(leeway)):
		return e.Refuse("token issued in the future (%v)", time.Unix(*t.Iat, 0).UTC())
	}
	return nil
}

// Audience is the aud claim: a string or an array of strings.
type Audience []string

// UnmarshalJSON reads a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}
