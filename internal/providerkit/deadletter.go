package providerkit

import (
	"context"
	"fmt"

	"github.com/crossbus/crossbus/driver"
)

// DeadLetterQueue moves a delivery's event to the dead-letter queue a
// provider keeps itself (for a broker that has none): the event, with the
// dead-letter extensions of info, goes through publish. A reader of such a
// queue (fromQueue) cannot dead-letter again, and a refused publish is
// reported as driver.ErrNotSupported, now, so that the portable layer falls
// back to the route's dead-letter topic when it has one. system names the
// provider in errors ("nats"). The caller settles the delivery once this
// returns nil.
func DeadLetterQueue(ctx context.Context, system string, fromQueue bool, e *driver.Event, info driver.DeadLetterInfo,
	publish func(ctx context.Context, dl *driver.Event) error) error {
	if fromQueue {
		return fmt.Errorf("%s: a dead letter cannot be dead-lettered again: %w", system, driver.ErrNotSupported)
	}
	dl := driver.DeadLetterEvent(e, info)
	if err := publish(ctx, &dl); err != nil {
		return fmt.Errorf("%s: the dead-letter queue refused event %q (%w): %w", system, e.ID(), driver.ErrNotSupported, err)
	}
	return nil
}
