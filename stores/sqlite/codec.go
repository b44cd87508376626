package sqlite

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/eventcodec"
)

// The store keeps events in the compact binary encoding of
// internal/eventcodec (replay decodes without parsing JSON), framed in a
// record that repeats the row's stream, version and position, so that
// reads select the body alone:
//
//	record body: 0x01 | stream | uvarint version | uvarint position
//	             | varint recorded | event (eventcodec)
//
// The stream is a uvarint length and its bytes, as eventcodec writes
// strings.
const recordFormat = 1

// encodeEvent appends the event part of the encoding to b.
func encodeEvent(b []byte, e *crossbus.Event) ([]byte, error) {
	return eventcodec.Append(b, e)
}

// encodeRecord returns the body of an events row.
func encodeRecord(stream string, version, position uint64, recorded int64, eventPart []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*4+len(stream)+len(eventPart))
	b = append(b, recordFormat)
	b = eventcodec.AppendString(b, stream)
	b = binary.AppendUvarint(b, version)
	b = binary.AppendUvarint(b, position)
	b = binary.AppendVarint(b, recorded)
	return append(b, eventPart...)
}

// decoder turns bodies back into events. It remembers the last stream it
// saw, so runs of events of one stream share one string (the event decoder
// does the same for sources, types and content types).
type decoder struct {
	stream string
	events eventcodec.Decoder
}

// eventBlock holds what one decoded event needs, so that decoding a page of
// events allocates them in one block.
type eventBlock = eventcodec.Block

// decodeRecord decodes an events row body into blk. The event's id,
// subject and data alias body, which must not be modified afterwards (the
// driver hands out a fresh copy of every blob).
func (d *decoder) decodeRecord(body []byte, blk *eventBlock) (rec Record, err error) {
	r := eventcodec.NewReader(body)
	if r.Byte() != recordFormat {
		return rec, fmt.Errorf("%w: unknown record format", eventcodec.ErrCorrupt)
	}
	if stream := r.Bytes(); string(stream) != d.stream { // no allocation for the comparison
		d.stream = string(stream)
	}
	rec.Stream = d.stream
	rec.Version = r.Uvarint()
	rec.Position = r.Uvarint()
	recorded := r.Varint()
	if r.Failed() {
		return rec, fmt.Errorf("%w: record header", eventcodec.ErrCorrupt)
	}
	rec.Recorded = time.Unix(0, recorded).UTC()
	if err := d.events.DecodeInto(r.Rest(), blk); err != nil {
		return rec, err
	}
	rec.Event = &blk.E
	return rec, nil
}

// recordHeader reads the stream version and position from a record body's
// header (zeros if the body is corrupt; decodeRecord reports that).
func recordHeader(body []byte) (version, position uint64) {
	r := eventcodec.NewReader(body)
	r.Byte()
	r.Bytes()
	version = r.Uvarint()
	return version, r.Uvarint()
}

// decodeEvent decodes the event part into a new event, which aliases b.
func (d *decoder) decodeEvent(b []byte) (*crossbus.Event, error) {
	return d.events.Decode(b)
}
