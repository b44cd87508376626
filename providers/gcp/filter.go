package gcp

import (
	"fmt"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/eventpattern"
)

// SubscriptionFilter translates a route filter into a Pub/Sub subscription
// filter over the ce- attributes crossbus writes (datacontenttype is the
// content-type attribute). Conditions on data cannot be expressed in
// attributes, so such filters come back as supersets (exact false) and the
// portable layer's local matching keeps the result exact. A filter that is
// not an event pattern cannot be translated: the error wraps
// driver.ErrNotSupported.
func SubscriptionFilter(f crossbus.Filter) (filter string, exact bool, err error) {
	p, err := eventpattern.FromFilter(f)
	if err != nil {
		return "", false, fmt.Errorf("%w: Pub/Sub filter: %w", driver.ErrNotSupported, err)
	}
	return eventpattern.ToPubSubFilter(p)
}

// patternFilter translates a route's pattern as driver.SubscriptionSpec
// carries it (canonical JSON, "" for none). ok is false when nothing of it
// can be expressed in a Pub/Sub filter.
func patternFilter(pattern string) (filter string, exact, ok bool) {
	if pattern == "" {
		return "", false, false
	}
	p, err := eventpattern.Compile([]byte(pattern))
	if err != nil {
		return "", false, false
	}
	filter, exact, err = eventpattern.ToPubSubFilter(p)
	return filter, exact, err == nil
}
