// Package cewire holds what the header-based CloudEvents bindings (NATS,
// Kafka) share when they read binary-mode events: setting a context
// attribute from its wire text, the required-attribute check, and a cache of
// parsed sources.
package cewire

import (
	"fmt"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
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

// CheckRequired reports a missing id, source or type, naming the header
// (prefix + attribute) it should have come in; what names the binding.
func CheckRequired(ctx *event.EventContextV1, what, prefix string) error {
	switch {
	case ctx.ID == "":
		return fmt.Errorf("%s: header %sid missing or empty", what, prefix)
	case ctx.Source.String() == "":
		return fmt.Errorf("%s: header %ssource missing or empty", what, prefix)
	case ctx.Type == "":
		return fmt.Errorf("%s: header %stype missing or empty", what, prefix)
	}
	return nil
}

// SetAttribute sets one attribute read from the wire (name without its
// prefix, lower case).
func SetAttribute(ctx *event.EventContextV1, name, v string, sources *SourceCache) error {
	switch name {
	case "specversion":
		if v != event.CloudEventsVersionV1 {
			return fmt.Errorf("specversion %q is not supported (want %q)", v, event.CloudEventsVersionV1)
		}
	case "id":
		ctx.ID = v
	case "source":
		u, ok := sources.Parse(v)
		if !ok {
			return fmt.Errorf("source %q is not a URI reference", v)
		}
		ctx.Source = u
	case "type":
		ctx.Type = v
	case "subject":
		s := v
		ctx.Subject = &s
	case "time":
		t, err := types.ParseTimestamp(v)
		if err != nil {
			return fmt.Errorf("time %q is not RFC 3339", v)
		}
		ctx.Time = t
	case "dataschema":
		u := types.ParseURI(v)
		if u == nil {
			return fmt.Errorf("dataschema %q is not a URI", v)
		}
		ctx.DataSchema = u
	case "datacontenttype":
		s := v
		ctx.DataContentType = &s
	default:
		if !ValidExtensionName(name) {
			return fmt.Errorf("extension name %q is not lower-case a-z and 0-9", name)
		}
		if ctx.Extensions == nil {
			ctx.Extensions = make(map[string]any, 4)
		}
		ctx.Extensions[name] = v
	}
	return nil
}

// ValidExtensionName reports whether name is a CloudEvents extension name:
// lower-case a-z and 0-9, and not data or data_base64.
func ValidExtensionName(name string) bool {
	if name == "" || name == "data" || name == "data_base64" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
