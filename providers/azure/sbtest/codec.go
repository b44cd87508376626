package sbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/Azure/go-amqp"
)

// This file is the AMQP 1.0 type system (OASIS AMQP 1.0 part 1, "Types") as
// the broker needs it for performatives: a decoder into plain Go values and an
// encoder back. Messages themselves are decoded with go-amqp's exported
// Message type, so the client and the broker agree on every message section.

// symbol is the AMQP symbol type (ASCII names such as error conditions).
type symbol string

// uuid is the AMQP uuid type.
type uuid [16]byte

// described is an AMQP described type: a descriptor (ulong code or symbol)
// and the value it describes.
type described struct {
	descriptor any
	value      any
}

// code returns the numeric descriptor, or 0 when it is a symbol.
func (d described) code() uint64 {
	c, _ := d.descriptor.(uint64)
	return c
}

// fields returns the described value as a list, or nil.
func (d described) fields() []any {
	l, _ := d.value.([]any)
	return l
}

// mapValue is an AMQP map, kept in wire order (keys may repeat types that Go
// maps cannot key on, such as []byte).
type mapValue []mapEntry

type mapEntry struct{ key, value any }

// get returns the value for a string or symbol key.
func (m mapValue) get(key string) (any, bool) {
	for _, e := range m {
		switch k := e.key.(type) {
		case string:
			if k == key {
				return e.value, true
			}
		case symbol:
			if string(k) == key {
				return e.value, true
			}
		}
	}
	return nil, false
}

// array is an AMQP array: every element shares one constructor. Elements are
// decoded as their Go values; encoding picks the constructor from the first.
type array []any

// Type codes (AMQP 1.0 part 1, section 1.6).
const (
	tcDescribed = 0x00
	tcNull      = 0x40
	tcTrue      = 0x41
	tcFalse     = 0x42
	tcUint0     = 0x43
	tcUlong0    = 0x44
	tcList0     = 0x45
	tcUbyte     = 0x50
	tcByte      = 0x51
	tcSmallUint = 0x52
	tcSmallUlng = 0x53
	tcSmallInt  = 0x54
	tcSmallLong = 0x55
	tcBool      = 0x56
	tcUshort    = 0x60
	tcShort     = 0x61
	tcUint      = 0x70
	tcInt       = 0x71
	tcFloat     = 0x72
	tcChar      = 0x73
	tcDecimal32 = 0x74
	tcUlong     = 0x80
	tcLong      = 0x81
	tcDouble    = 0x82
	tcTimestamp = 0x83
	tcDecimal64 = 0x84
	tcDecimal12 = 0x94
	tcUUID      = 0x98
	tcVbin8     = 0xa0
	tcStr8      = 0xa1
	tcSym8      = 0xa3
	tcVbin32    = 0xb0
	tcStr32     = 0xb1
	tcSym32     = 0xb3
	tcList8     = 0xc0
	tcMap8      = 0xc1
	tcList32    = 0xd0
	tcMap32     = 0xd1
	tcArray8    = 0xe0
	tcArray32   = 0xf0
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 32

var errShort = errors.New("sbtest: AMQP value truncated")

// decoder reads AMQP values from a byte slice.
type decoder struct {
	b     []byte
	depth int
}

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.b) {
		return nil, errShort
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) byte() (byte, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// value decodes one value (with its constructor).
func (d *decoder) value() (any, error) {
	c, err := d.byte()
	if err != nil {
		return nil, err
	}
	if c == tcDescribed {
		d.depth++
		defer func() { d.depth-- }()
		if d.depth > maxDepth {
			return nil, errors.New("sbtest: AMQP value nested too deeply")
		}
		desc, err := d.value()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		return described{descriptor: desc, value: v}, nil
	}
	return d.body(c)
}

// fixedWidth is the encoded width of a fixed-size constructor's value.
func fixedWidth(c byte) (int, bool) {
	switch c {
	case tcNull, tcTrue, tcFalse, tcUint0, tcUlong0, tcList0:
		return 0, true
	case tcUbyte, tcByte, tcSmallUint, tcSmallUlng, tcSmallInt, tcSmallLong, tcBool:
		return 1, true
	case tcUshort, tcShort:
		return 2, true
	case tcUint, tcInt, tcFloat, tcChar, tcDecimal32:
		return 4, true
	case tcUlong, tcLong, tcDouble, tcTimestamp, tcDecimal64:
		return 8, true
	case tcDecimal12, tcUUID:
		return 16, true
	}
	return 0, false
}

// body decodes the value that follows constructor c.
func (d *decoder) body(c byte) (any, error) {
	if w, ok := fixedWidth(c); ok {
		b, err := d.take(w)
		if err != nil {
			return nil, err
		}
		return fixedValue(c, b), nil
	}
	switch c {
	case tcVbin8, tcStr8, tcSym8, tcVbin32, tcStr32, tcSym32:
		n, err := d.size(c == tcVbin8 || c == tcStr8 || c == tcSym8)
		if err != nil {
			return nil, err
		}
		b, err := d.take(n)
		if err != nil {
			return nil, err
		}
		switch c {
		case tcVbin8, tcVbin32:
			return append([]byte(nil), b...), nil
		case tcStr8, tcStr32:
			return string(b), nil
		}
		return symbol(b), nil
	case tcList8, tcList32, tcMap8, tcMap32:
		small := c == tcList8 || c == tcMap8
		n, err := d.size(small)
		if err != nil {
			return nil, err
		}
		body, err := d.take(n)
		if err != nil {
			return nil, err
		}
		sub := decoder{b: body, depth: d.depth + 1}
		if sub.depth > maxDepth {
			return nil, errors.New("sbtest: AMQP value nested too deeply")
		}
		count, err := sub.count(small)
		if err != nil {
			return nil, err
		}
		if count > len(sub.b) { // every element takes at least one byte
			return nil, fmt.Errorf("sbtest: AMQP compound claims %d elements in %d bytes", count, len(sub.b))
		}
		if c == tcList8 || c == tcList32 {
			l := make([]any, 0, count)
			for range count {
				v, err := sub.value()
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			return l, nil
		}
		if count%2 != 0 {
			return nil, fmt.Errorf("sbtest: AMQP map with odd element count %d", count)
		}
		m := make(mapValue, 0, count/2)
		for range count / 2 {
			k, err := sub.value()
			if err != nil {
				return nil, err
			}
			v, err := sub.value()
			if err != nil {
				return nil, err
			}
			m = append(m, mapEntry{k, v})
		}
		return m, nil
	case tcArray8, tcArray32:
		return d.array(c == tcArray8)
	}
	return nil, fmt.Errorf("sbtest: unknown AMQP type code %#02x", c)
}

func (d *decoder) size(small bool) (int, error) {
	if small {
		b, err := d.byte()
		return int(b), err
	}
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(d.b)) {
		return 0, errShort
	}
	return int(n), nil
}

func (d *decoder) count(small bool) (int, error) { return d.size(small) }

func (d *decoder) array(small bool) (any, error) {
	n, err := d.size(small)
	if err != nil {
		return nil, err
	}
	body, err := d.take(n)
	if err != nil {
		return nil, err
	}
	sub := decoder{b: body, depth: d.depth + 1}
	if sub.depth > maxDepth {
		return nil, errors.New("sbtest: AMQP value nested too deeply")
	}
	var count int
	if small {
		b, err := sub.byte()
		if err != nil {
			return nil, err
		}
		count = int(b)
	} else {
		b, err := sub.take(4)
		if err != nil {
			return nil, err
		}
		count = int(binary.BigEndian.Uint32(b) & 0x7fffffff)
	}
	c, err := sub.byte()
	if err != nil {
		return nil, err
	}
	var desc any
	if c == tcDescribed {
		if desc, err = sub.value(); err != nil {
			return nil, err
		}
		if c, err = sub.byte(); err != nil {
			return nil, err
		}
	}
	if w, ok := fixedWidth(c); ok && w == 0 && count > 0 {
		if count > 1<<16 {
			return nil, fmt.Errorf("sbtest: AMQP array of %d empty elements", count)
		}
	} else if count > len(sub.b) {
		return nil, fmt.Errorf("sbtest: AMQP array claims %d elements in %d bytes", count, len(sub.b))
	}
	a := make(array, 0, count)
	for range count {
		v, err := sub.body(c)
		if err != nil {
			return nil, err
		}
		if desc != nil {
			v = described{descriptor: desc, value: v}
		}
		a = append(a, v)
	}
	return a, nil
}

func fixedValue(c byte, b []byte) any {
	switch c {
	case tcNull:
		return nil
	case tcTrue:
		return true
	case tcFalse:
		return false
	case tcUint0:
		return uint32(0)
	case tcUlong0:
		return uint64(0)
	case tcList0:
		return []any{}
	case tcUbyte:
		return b[0]
	case tcByte:
		return int8(b[0])
	case tcSmallUint:
		return uint32(b[0])
	case tcSmallUlng:
		return uint64(b[0])
	case tcSmallInt:
		return int32(int8(b[0]))
	case tcSmallLong:
		return int64(int8(b[0]))
	case tcBool:
		return b[0] != 0
	case tcUshort:
		return binary.BigEndian.Uint16(b)
	case tcShort:
		return int16(binary.BigEndian.Uint16(b))
	case tcUint:
		return binary.BigEndian.Uint32(b)
	case tcInt:
		return int32(binary.BigEndian.Uint32(b))
	case tcFloat:
		return math.Float32frombits(binary.BigEndian.Uint32(b))
	case tcChar:
		return rune(binary.BigEndian.Uint32(b))
	case tcUlong:
		return binary.BigEndian.Uint64(b)
	case tcLong:
		return int64(binary.BigEndian.Uint64(b))
	case tcDouble:
		return math.Float64frombits(binary.BigEndian.Uint64(b))
	case tcTimestamp:
		return time.UnixMilli(int64(binary.BigEndian.Uint64(b))).UTC()
	case tcUUID:
		var u uuid
		copy(u[:], b)
		return u
	}
	// decimals: kept as raw bytes; nothing in the broker reads them
	return append([]byte(nil), b...)
}

// plainMap converts a decoded map with string or symbol keys to the Go
// types go-amqp uses for application properties; nested compound values,
// which application properties cannot hold, are left out.
func plainMap(m mapValue) map[string]any {
	out := make(map[string]any, len(m))
	for _, e := range m {
		var k string
		switch x := e.key.(type) {
		case string:
			k = x
		case symbol:
			k = string(x)
		default:
			continue
		}
		switch v := e.value.(type) {
		case symbol:
			out[k] = string(v)
		case uuid:
			out[k] = amqp.UUID(v)
		case mapValue, array, described, []any:
		default:
			out[k] = v
		}
	}
	return out
}
