package crossbus

import "context"

// Handler handles one event. Returning nil acknowledges it; an error has it
// retried by the subscription's retry policy; Permanent(err) dead-letters it
// at once. The event must not be modified or kept after Handle returns.
type Handler interface {
	Handle(ctx context.Context, e *Event) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, e *Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, e *Event) error { return f(ctx, e) }

// Middleware wraps a Handler to add behaviour, as net/http middleware does.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Typed returns a Handler that decodes the event's data into a T (JSON by
// default; see DataAs) and calls fn with it. Data that does not decode is a
// permanent failure: the event is dead-lettered, not retried.
func Typed[T any](fn func(ctx context.Context, e *Event, data T) error) Handler {
	return typed[T]{fn}
}

type typed[T any] struct {
	fn func(ctx context.Context, e *Event, data T) error
}

func (h typed[T]) Handle(ctx context.Context, e *Event) error {
	v, err := DataAs[T](e)
	if err != nil {
		return Permanent(err)
	}
	return h.fn(ctx, e, v)
}

// funcValue is the function a Typed handler calls (for Router.Topology).
func (h typed[T]) funcValue() any { return h.fn }

// DeliveryInfo describes the delivery a handler is running for.
type DeliveryInfo struct {
	Topic        string
	Subscription string
	Attempt      int // 1 for the first attempt
	MaxAttempts  int // the retry policy's limit
	// Stopping is closed once the subscription stops receiving (shutdown
	// began); middleware that waits for other events (sequence.Resequence)
	// gives up then. nil outside a pulled subscription.
	Stopping <-chan struct{}
	// Clock is the route's clock (WithClock; the system clock by default),
	// for middleware that waits (sequence.Resequence).
	Clock Clock
}

// deliveryContext carries DeliveryInfo with one allocation per delivery.
type deliveryContext struct {
	context.Context
	info DeliveryInfo
}

type deliveryKey struct{}

func (c *deliveryContext) Value(key any) any {
	if key == (deliveryKey{}) {
		return &c.info
	}
	return c.Context.Value(key)
}

// DeliveryInfoFrom returns the delivery a handler's context belongs to.
func DeliveryInfoFrom(ctx context.Context) (DeliveryInfo, bool) {
	if p, ok := ctx.Value(deliveryKey{}).(*DeliveryInfo); ok {
		return *p, true
	}
	return DeliveryInfo{}, false
}
