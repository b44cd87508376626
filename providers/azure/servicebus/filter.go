package servicebus

import (
	"fmt"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/eventpattern"
)

// SQLFilter translates a route filter into a Service Bus SQL rule filter over
// the cloudEvents_ application properties crossbus writes. exact reports
// whether the rule selects exactly the filter's events; otherwise the
// portable layer's local matching keeps the result exact. A filter that is
// not an event pattern cannot be translated: the error wraps
// driver.ErrNotSupported.
func SQLFilter(f crossbus.Filter) (sql string, exact bool, err error) {
	p, err := eventpattern.FromFilter(f)
	if err != nil {
		return "", false, fmt.Errorf("%w: Service Bus SQL filter: %w", driver.ErrNotSupported, err)
	}
	return eventpattern.ToServiceBusSQL(p)
}
