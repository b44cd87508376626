package driver

import "context"

// ReceiveStopper is implemented by receivers that pull ahead of Receive (a
// pull subscription whose outstanding request the service fills as
// messages become available). Such a receiver is handed again what its own
// deliveries give back (Nack) while it is open, and messages on their way
// to it when it closes stay leased to nobody until their lease ends.
//
// StopReceiving ends receiving: Receive returns an error wrapping
// ErrClosed, nothing more is pulled, and what was pulled and not handed out
// is given back. Deliveries already handed out stay valid for settling;
// Close must still be called. A caller that gives back what it holds
// before it closes the receiver (a reader of dead letters) calls it first.
type ReceiveStopper interface {
	StopReceiving(ctx context.Context) error
}
