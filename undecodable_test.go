package crossbus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// undecodablePush is a pushed delivery of a message that is not a CloudEvent.
type undecodablePush struct{ *driver.PushDelivery }

func (undecodablePush) DecodeError() error { return errors.New("not a CloudEvent") }

func placeholderDelivery() *driver.PushDelivery {
	e := driver.NewUndecodableEvent("m-1", "/queue", []byte("garbage"), nil)
	return driver.NewPushDelivery(&e, 1)
}

// Every kind of endpoint dead-letters an undecodable delivery before its
// filter and handler: per-event, ordered and batch.
func TestEndpointsDeadLetterUndecodableDeliveries(t *testing.T) {
	b, p := memBus(t)
	ctx := context.Background()
	ran := 0
	h := crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error { ran++; return nil })
	bh := crossbus.BatchHandlerFunc(func(_ context.Context, evs []*crossbus.Event) []error { ran += len(evs); return nil })
	require.NoError(t, p.CreateSubscription(ctx, "dead-letters", "inspect", false))

	plain, err := b.NewEndpoint("orders", "plain", h, crossbus.WithDeadLetterTopic("dead-letters"))
	require.NoError(t, err)
	ordered, err := b.NewEndpoint("orders", "ordered", h, crossbus.WithDeadLetterTopic("dead-letters"), crossbus.WithOrdering())
	require.NoError(t, err)
	batched, err := b.NewBatchEndpoint("orders", "batched", bh, crossbus.WithDeadLetterTopic("dead-letters"),
		crossbus.WithFilter(crossbus.TypeIs("com.example.order")))
	require.NoError(t, err)
	for name, deliver := range map[string]func(driver.Delivery){
		"per-event": func(d driver.Delivery) { plain.Deliver(ctx, d) },
		"ordered":   func(d driver.Delivery) { ordered.DeliverBatch(ctx, []driver.Delivery{d}) },
		"batch":     func(d driver.Delivery) { batched.DeliverBatch(ctx, []driver.Delivery{d}) },
	} {
		d := placeholderDelivery()
		deliver(undecodablePush{d})
		o, _ := d.Outcome()
		assert.Equal(t, driver.OutcomeAcked, o, "%s: acked after dead-lettering", name)
	}
	assert.Zero(t, ran, "no handler ran on an undecodable delivery")
	dead, err := p.Stats("dead-letters", "inspect")
	require.NoError(t, err)
	assert.Equal(t, 3, dead.Waiting, "three dead letters on the dead-letter topic")
}
