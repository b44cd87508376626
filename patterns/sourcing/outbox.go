package sourcing

import (
	"context"
	"time"

	"github.com/crossbus/crossbus"
)

// OutboxRoute picks the bus topic an appended event is relayed to; "" means
// the event is not relayed. Stores configured with one enqueue each appended
// event in the transaction that records it.
type OutboxRoute func(stream string, e *crossbus.Event) string

// ToTopic relays every appended event to one topic.
func ToTopic(topic string) OutboxRoute {
	return func(string, *crossbus.Event) string { return topic }
}

// OutboxMessage is an event waiting to be published.
type OutboxMessage struct {
	ID       uint64 // increasing in enqueue (commit) order
	Topic    string
	Stream   string // the ordering scope; "" for messages without one
	Version  uint64 // the event's stream version when an append enqueued it, else 0
	Event    *crossbus.Event
	Enqueued time.Time
}

// Outbox is the store side of the transactional outbox: messages are written
// in the same transaction as the state change they announce, and a Relay
// publishes and marks them.
type Outbox interface {
	// PendingOutbox returns up to limit unsent messages, oldest first.
	PendingOutbox(ctx context.Context, limit int) ([]OutboxMessage, error)
	// MarkSent records that the messages were published; they are not
	// returned by PendingOutbox again.
	MarkSent(ctx context.Context, ids ...uint64) error
}
