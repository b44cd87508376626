// Package datahook is the seam between the portable layer and packages that
// keep event data outside the event (package claimcheck). The root package
// installs Install at init; a bus with a Hook hands it every publish and
// every delivery, so the claim check needs no exported name in the root
// package.
package datahook

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Hook moves event data out of events on publish and back in on delivery.
// It must be safe for concurrent use and must never modify the events it is
// given.
type Hook interface {
	// Outgoing is called once per Publish with the valid events of the
	// call, in order, and the provider's event size limit (0 = none). It
	// returns the events to send in their place — each either the same
	// pointer or a copy whose data is held elsewhere — and, when some event
	// cannot be sent, an error per event (nil where the event is fine).
	// errs is nil when every event is fine.
	Outgoing(ctx context.Context, events []*event.Event, limit int) (out []*event.Event, errs []error)

	// References reports whether a delivered event's data is held by the
	// hook and must be fetched (Resolve) before filters and handlers see it.
	// It is called for every delivery and must be cheap.
	References(e *event.Event) bool

	// Resolve returns a copy of e with its data fetched. The portable layer
	// retries a failure like a handler failure (dead-lettering after the
	// last attempt); a permanent failure is marked as crossbus.Permanent.
	Resolve(ctx context.Context, e *event.Event) (*event.Event, error)
}

// Install sets h as the hook of bus (a *crossbus.Bus); it is set by the
// root package at init and used inside the crossbus.BusOption a package
// like claimcheck returns.
var Install func(bus any, h Hook) error
