package driver

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Outcome is how the portable layer settled a pushed delivery.
type Outcome int

const (
	// OutcomeUnsettled: the pipeline has not settled the delivery.
	OutcomeUnsettled Outcome = iota
	// OutcomeAcked: handled, filtered out, a duplicate, or dead-lettered
	// through the route's dead-letter topic: answer success.
	OutcomeAcked
	// OutcomeNacked: to be retried: answer with a retryable failure.
	OutcomeNacked
)

func (o Outcome) String() string {
	switch o {
	case OutcomeUnsettled:
		return "unsettled"
	case OutcomeAcked:
		return "acked"
	case OutcomeNacked:
		return "nacked"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// PushDelivery is the Delivery of an event a platform pushed (an HTTP
// request, a Lambda or Functions invocation): it records how the portable
// layer settled it, for the push adapter to turn into the platform's answer
// (a status code, a partial batch response). It has no native dead-letter
// queue: an endpoint dead-letters through its route's dead-letter topic.
type PushDelivery struct {
	ev      *Event
	attempt int

	mu      sync.Mutex
	outcome Outcome
	delay   time.Duration
}

// NewPushDelivery wraps a pushed event and the platform's attempt number
// (1 when the platform does not say).
func NewPushDelivery(e *Event, attempt int) *PushDelivery {
	return &PushDelivery{ev: e, attempt: max(attempt, 1)}
}

// Event implements Delivery.
func (p *PushDelivery) Event() *Event { return p.ev }

// Attempt implements Delivery.
func (p *PushDelivery) Attempt() int { return p.attempt }

func (p *PushDelivery) settle(o Outcome, delay time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outcome != OutcomeUnsettled {
		return fmt.Errorf("crossbus: pushed delivery of %q already %v", p.ev.ID(), p.outcome)
	}
	p.outcome, p.delay = o, delay
	return nil
}

// Ack implements Delivery.
func (p *PushDelivery) Ack(ctx context.Context) error { return p.settle(OutcomeAcked, 0) }

// Nack implements Delivery.
func (p *PushDelivery) Nack(ctx context.Context, delay time.Duration) error {
	return p.settle(OutcomeNacked, delay)
}

// DeadLetter implements Delivery: pushed deliveries have no native
// dead-letter queue.
func (p *PushDelivery) DeadLetter(ctx context.Context, info DeadLetterInfo) error {
	return fmt.Errorf("%w: pushed deliveries are dead-lettered through the route's dead-letter topic", ErrNotSupported)
}

// Outcome reports how the delivery was settled and, for OutcomeNacked, the
// delay the retry policy asked for (adapters may send it as Retry-After).
func (p *PushDelivery) Outcome() (Outcome, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outcome, p.delay
}
