package push

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	defaultKeysTTL = time.Hour
	maxKeysTTL     = 24 * time.Hour
	// minRefetch stops tokens with made-up key ids from making every
	// request fetch the key set.
	minRefetch   = 30 * time.Second
	maxJWKSBytes = 1 << 20
)

// keySet caches the RSA keys of a JSON Web Key Set.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	expires time.Time
	fetched time.Time
}

var keySetInit sync.Mutex

func (v *GoogleOIDC) keySet() *keySet {
	keySetInit.Lock()
	defer keySetInit.Unlock()
	if v.keys == nil {
		ks := &keySet{url: v.JWKSURL, client: v.Client, now: v.Now}
		if ks.url == "" {
			ks.url = GoogleJWKSURL
		}
		if ks.client == nil {
			ks.client = http.DefaultClient
		}
		if ks.now == nil {
			ks.now = time.Now
		}
		v.keys = ks
	}
	return v.keys
}

// key returns the key with id kid, fetching the set when the cache has
// expired or does not know kid.
func (k *keySet) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	key, known := k.keys[kid]
	expired := now.After(k.expires)
	if known && !expired {
		return key, nil
	}
	if expired || now.Sub(k.fetched) >= minRefetch {
		if err := k.fetch(ctx, now); err != nil {
			return nil, err
		}
		key, known = k.keys[kid]
	}
	if !known {
		return nil, unauthorized("token signed with unknown key id %q", kid)
	}
	return key, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func (k *keySet) fetch(ctx context.Context, now time.Time) error {
	k.fetched = now
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrKeysUnavailable, k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", ErrKeysUnavailable, k.url, resp.Status)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return fmt.Errorf("%w: %s is not a JSON Web Key Set: %v", ErrKeysUnavailable, k.url, err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kty != "RSA" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		if pub, err := rsaKey(j); err == nil {
			keys[j.Kid] = pub
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: %s has no RSA signing keys", ErrKeysUnavailable, k.url)
	}
	k.keys = keys
	k.expires = now.Add(cacheTTL(resp.Header.Get("Cache-Control")))
	return nil
}

func rsaKey(j jwk) (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.DecodeString(j.N)
	if err != nil {
		return nil, err
	}
	e, err := base64.RawURLEncoding.DecodeString(j.E)
	if err != nil {
		return nil, err
	}
	if len(e) == 0 || len(e) > 4 || len(n) < 128 {
		return nil, fmt.Errorf("key %q has an unusable modulus or exponent", j.Kid)
	}
	exp := 0
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

// cacheTTL reads max-age from a Cache-Control header.
func cacheTTL(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		if s, err := strconv.Atoi(val); err == nil && s > 0 {
			return min(time.Duration(s)*time.Second, maxKeysTTL)
		}
	}
	return defaultKeysTTL
}
