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
