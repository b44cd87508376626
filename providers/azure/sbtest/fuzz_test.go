package sbtest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzParseFrame feeds arbitrary frame bodies to the broker's decoder: it
// must never panic, and whatever it decodes must encode and decode again.
func FuzzParseFrame(f *testing.F) {
	seeds := []any{
		described{uint64(descOpen), []any{"c", nil, uint32(65536), uint16(1), uint32(30000)}},
		attach{name: "l", handle: 1, role: true, source: &described{uint64(descSource), []any{"q", nil, nil, nil, nil, nil, nil,
			mapValue{{symbol(sessionFilterName), described{uint64(0x137000000C), nil}}}}}}.encode(),
		flow{incomingWindow: 10, handle: ptr(uint32(1)), linkCredit: ptr(uint32(5))}.encode(),
		disposition{role: true, first: 3, state: stateRejected(&amqpError{Condition: "com.microsoft:dead-letter",
			Info: mapValue{{"DeadLetterReason", "r"}}})}.encode(),
		described{uint64(descSASLMechanisms), []any{array{symbol("ANONYMOUS")}}},
	}
	for _, s := range seeds {
		var e encoder
		e.value(s)
		f.Add(e.b)
	}
	f.Add([]byte{0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x43, 0xde, 0xad})
	f.Add([]byte{0x00, 0x53, 0x10, 0xf0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := parseFrame(frameAMQP, 0, body)
		if err != nil {
			return
		}
		var e encoder
		e.value(reencodable(fr.body))
		if _, err := parseFrame(frameAMQP, 0, e.b); err != nil {
			t.Fatalf("re-encoded performative does not decode: %v", err)
		}
		// The typed decoders must cope with any field values.
		fields := fr.body.fields()
		_, _ = decodeAttach(fields)
		_ = decodeFlow(fields)
		_, _ = decodeTransfer(fields)
		_, _ = decodeDisposition(fields)
		_, _ = outcomeOf(fr.body)
		_ = decodeError(fr.body)
		_ = plainMap(fieldMap(fields, 0))
	})
}

// reencodable maps decoded values the encoder does not write back (char,
// decimals, arrays of other element types) to ones it does.
func reencodable(v any) any {
	switch x := v.(type) {
	case rune:
		return int32(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = reencodable(e)
		}
		return out
	case mapValue:
		out := make(mapValue, len(x))
		for i, e := range x {
			out[i] = mapEntry{reencodable(e.key), reencodable(e.value)}
		}
		return out
	case array:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = reencodable(e)
		}
		return out
	case described:
		return described{reencodable(x.descriptor), reencodable(x.value)}
	}
	return v
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, frameAMQP, 3, flow{incomingWindow: 1}.encode(), []byte("payload")))
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 12, 9, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		hdr := make([]byte, 8)
		fr, err := readFrame(bytes.NewReader(b), hdr, 1<<16)
		if err != nil {
			return
		}
		if !fr.empty && len(b) >= 8 && binary.BigEndian.Uint32(b) > uint32(len(b)) {
			t.Fatalf("frame decoded past the input")
		}
	})
}
