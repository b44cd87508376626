package nats

import (
	"sync"

	"github.com/cloudevents/sdk-go/v2/types"
)

// sources caches parsed event sources: a consumer sees the same few sources
// over and over, and parsing a URI reference costs more than the rest of the
// decoding together.
var sources = uriCache{m: map[string]types.URIRef{}}

// uriCacheSize bounds the cache; it is emptied when full.
const uriCacheSize = 4096

type uriCache struct {
	mu sync.RWMutex
	m  map[string]types.URIRef
}

// parse returns the URI reference s (ok false when s is not one).
func (c *uriCache) parse(s string) (types.URIRef, bool) {
	c.mu.RLock()
	u, ok := c.m[s]
	c.mu.RUnlock()
	if ok {
		return u, true
	}
	p := types.ParseURIRef(s)
	if p == nil {
		return types.URIRef{}, false
	}
	c.mu.Lock()
	if len(c.m) >= uriCacheSize {
		clear(c.m)
	}
	c.m[s] = *p
	c.mu.Unlock()
	return *p, true
}
