package memory

import (
	"maps"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/crossbus/crossbus/driver"
)

// Events are copied twice, as a wire would: once when published, so the
// publisher may reuse or change its events as soon as Publish returns, and
// once per delivery, so a handler that changes its event affects no other
// subscription and no redelivery. A copy shares nothing that the event's
// setters change in place: the context and the extension map are new, and
// the data bytes are copied.

// eventCopy is an event and its own context, allocated together.
type eventCopy struct {
	ev  driver.Event
	ctx event.EventContextV1
}

// copyInto makes c a copy of src, taking the data bytes from arena; it
// returns the rest of the arena.
func (c *eventCopy) copyInto(src *driver.Event, arena []byte) []byte {
	c.ev = driver.Event{DataBase64: src.DataBase64}
	if v1, ok := src.Context.(*event.EventContextV1); ok && v1 != nil {
		c.ctx = *v1
		c.ctx.Extensions = nil
		if len(v1.Extensions) > 0 {
			c.ctx.Extensions = maps.Clone(v1.Extensions)
		}
		c.ev.Context = &c.ctx
	} else if src.Context != nil {
		c.ev.Context = src.Context.Clone()
	}
	if src.DataEncoded != nil {
		n := copy(arena, src.DataEncoded)
		c.ev.DataEncoded, arena = arena[:n:n], arena[n:]
	}
	if len(src.FieldErrors) > 0 {
		c.ev.FieldErrors = maps.Clone(src.FieldErrors)
	}
	return arena
}

// smallCopy is the copy of one small event with its data, allocated
// together (the common publish of one event).
type smallCopy struct {
	c    eventCopy
	data [smallData]byte
}

const smallData = 128

// copyEvents copies events into one block with one data arena.
func copyEvents(events []*driver.Event) []eventCopy {
	size := 0
	for _, e := range events {
		size += len(e.DataEncoded)
	}
	if len(events) == 1 && size <= smallData {
		sc := new(smallCopy)
		sc.c.copyInto(events[0], sc.data[:size])
		return unsafe.Slice(&sc.c, 1)
	}
	block := make([]eventCopy, len(events))
	arena := make([]byte, size)
	for i, e := range events {
		arena = block[i].copyInto(e, arena)
	}
	return block
}
