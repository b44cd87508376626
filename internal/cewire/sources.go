package cewire

import (
	"sync"

	"github.com/cloudevents/sdk-go/v2/types"
)

// SourceCache caches parsed event sources: a consumer sees the same few
// sources over and over, and parsing a URI reference costs more than the rest
// of the decoding together. It holds at most its size and is emptied when full.
type SourceCache struct {
	size int
	mu   sync.RWMutex
	m    map[string]types.URIRef
}

// NewSourceCache returns a cache of at most size sources.
func NewSourceCache(size int) *SourceCache {
	return &SourceCache{size: size, m: map[string]types.URIRef{}}
}

// Parse returns the URI reference s (ok false when s is not one).
func (c *SourceCache) Parse(s string) (types.URIRef, bool) {
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
	if len(c.m) >= c.size {
		clear(c.m)
	}
	c.m[s] = *p
	c.mu.Unlock()
	return *p, true
}

// ParseBytes is Parse for a header value; a cached source costs no copy.
func (c *SourceCache) ParseBytes(b []byte) (types.URIRef, bool) {
	c.mu.RLock()
	u, ok := c.m[string(b)]
	c.mu.RUnlock()
	if ok {
		return u, true
	}
	return c.Parse(string(b))
}
