package sbtest

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// encoder appends AMQP values to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) u8(v byte) { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) {
	e.b = binary.BigEndian.AppendUint16(e.b, v)
}
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

// value encodes v. Supported: nil, bool, uint8/16/32/64, int8/16/32/64, int
// (as long), float32/64, time.Time, uuid, []byte, string, symbol, []any
// (list), mapValue, array, described.
func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.u8(tcNull)
	case bool:
		if x {
			e.u8(tcTrue)
		} else {
			e.u8(tcFalse)
		}
	case uint8:
		e.u8(tcUbyte)
		e.u8(x)
	case uint16:
		e.u8(tcUshort)
		e.u16(x)
	case uint32:
		switch {
		case x == 0:
			e.u8(tcUint0)
		case x < 256:
			e.u8(tcSmallUint)
			e.u8(byte(x))
		default:
			e.u8(tcUint)
			e.u32(x)
		}
	case uint64:
		switch {
		case x == 0:
			e.u8(tcUlong0)
		case x < 256:
			e.u8(tcSmallUlng)
			e.u8(byte(x))
		default:
			e.u8(tcUlong)
			e.u64(x)
		}
	case int8:
		e.u8(tcByte)
		e.u8(byte(x))
	case int16:
		e.u8(tcShort)
		e.u16(uint16(x))
	case int32:
		if x >= -128 && x <= 127 {
			e.u8(tcSmallInt)
			e.u8(byte(int8(x)))
		} else {
			e.u8(tcInt)
			e.u32(uint32(x))
		}
	case int64:
		if x >= -128 && x <= 127 {
			e.u8(tcSmallLong)
			e.u8(byte(int8(x)))
		} else {
			e.u8(tcLong)
			e.u64(uint64(x))
		}
	case int:
		e.value(int64(x))
	case float32:
		e.u8(tcFloat)
		e.u32(math.Float32bits(x))
	case float64:
		e.u8(tcDouble)
		e.u64(math.Float64bits(x))
	case time.Time:
		e.u8(tcTimestamp)
		e.u64(uint64(x.UnixMilli()))
	case uuid:
		e.u8(tcUUID)
		e.b = append(e.b, x[:]...)
	case []byte:
		e.variable(tcVbin8, tcVbin32, x)
	case string:
		e.variable(tcStr8, tcStr32, []byte(x))
	case symbol:
		e.variable(tcSym8, tcSym32, []byte(x))
	case []any:
		e.list(x)
	case mapValue:
		e.compound(tcMap32, len(x)*2, func() {
			for _, kv := range x {
				e.value(kv.key)
				e.value(kv.value)
			}
		})
	case array:
		e.array(x)
	case described:
		e.u8(tcDescribed)
		e.value(x.descriptor)
		e.value(x.value)
	default:
		panic(fmt.Sprintf("sbtest: cannot encode %T as AMQP", v))
	}
}

func (e *encoder) variable(small, large byte, b []byte) {
	if len(b) < 256 {
		e.u8(small)
		e.u8(byte(len(b)))
	} else {
		e.u8(large)
		e.u32(uint32(len(b)))
	}
	e.b = append(e.b, b...)
}

func (e *encoder) list(l []any) {
	if len(l) == 0 {
		e.u8(tcList0)
		return
	}
	e.compound(tcList32, len(l), func() {
		for _, v := range l {
			e.value(v)
		}
	})
}

// compound writes a 32-bit list or map: size, count, then the elements.
func (e *encoder) compound(code byte, count int, elems func()) {
	e.u8(code)
	at := len(e.b)
	e.u32(0) // size, patched below
	e.u32(uint32(count))
	elems()
	binary.BigEndian.PutUint32(e.b[at:], uint32(len(e.b)-at-4))
}

// array writes elements with one wide constructor chosen by the first.
func (e *encoder) array(a array) {
	e.u8(tcArray32)
	at := len(e.b)
	e.u32(0)
	e.u32(uint32(len(a)))
	if len(a) == 0 {
		e.u8(tcNull)
	} else {
		switch a[0].(type) {
		case symbol:
			e.u8(tcSym32)
			for _, v := range a {
				s, _ := v.(symbol)
				e.u32(uint32(len(s)))
				e.b = append(e.b, s...)
			}
		case string:
			e.u8(tcStr32)
			for _, v := range a {
				s, _ := v.(string)
				e.u32(uint32(len(s)))
				e.b = append(e.b, s...)
			}
		case uint32:
			e.u8(tcUint)
			for _, v := range a {
				n, _ := v.(uint32)
				e.u32(n)
			}
		case int64:
			e.u8(tcLong)
			for _, v := range a {
				n, _ := v.(int64)
				e.u64(uint64(n))
			}
		default:
			panic(fmt.Sprintf("sbtest: cannot encode an AMQP array of %T", a[0]))
		}
	}
	binary.BigEndian.PutUint32(e.b[at:], uint32(len(e.b)-at-4))
}
