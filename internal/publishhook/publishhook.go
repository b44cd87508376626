// Package publishhook is the seam between the portable layer and packages
// that watch what a bus published (package ops's archive). The root package
// sets Install at init; a bus calls its hooks after every Publish with the
// events the provider accepted, so watchers need no exported name in the
// root package.
package publishhook

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Hook is called after every Publish on the bus with the events the provider
// accepted (never refused or failed ones), in order, before Publish returns.
// Hooks run one after another in the publishing goroutine, so they add to
// Publish's latency; they must not modify or keep the events (clone what
// they keep) and cannot fail the publish.
type Hook func(ctx context.Context, topic string, events []*event.Event)

// Install adds h to bus (a *crossbus.Bus); the root package sets it at init,
// and packages like ops call it inside the crossbus.BusOption they return.
var Install func(bus any, h Hook) error
