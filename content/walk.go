package content

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/x448/float16"
)

// CBOR major types (RFC 8949 §3.1).
const (
	majorUint  = 0
	majorNeg   = 1
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
	majorTag   = 6
	majorOther = 7
)

// reader checks the extension values, which may be any CBOR: it accepts
// only well-formed items in deterministic encoding (RFC 8949 §4.2.1:
// shortest arguments, definite lengths, sorted unique map keys, shortest
// floats) within the data model of §7.2 and the depth of §7.3.
type reader struct {
	b   []byte
	off int
}

func (r *reader) fail(format string, args ...any) error {
	return fmt.Errorf("%w: extension value at offset %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
}

// head reads an initial byte and its argument, which must be in its
// shortest form and not indefinite.
func (r *reader) head() (major byte, arg uint64, err error) {
	if r.off >= len(r.b) {
		return 0, 0, r.fail("truncated")
	}
	ib := r.b[r.off]
	r.off++
	major, ai := ib>>5, ib&0x1f
	if major == majorOther && ai >= 25 && ai <= 27 {
		return major, uint64(ai), nil // floats: the caller reads them
	}
	var min uint64
	switch {
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 24:
		arg, err = r.uint(1)
		min = 24
		if major == majorOther {
			min = 32 // simple values 0-31 are never in two bytes
		}
	case ai == 25:
		arg, err = r.uint(2)
		min = 1 << 8
	case ai == 26:
		arg, err = r.uint(4)
		min = 1 << 16
	case ai == 27:
		arg, err = r.uint(8)
		min = 1 << 32
	default:
		return 0, 0, r.fail("reserved or indefinite length")
	}
	if err != nil {
		return 0, 0, err
	}
	if arg < min {
		return 0, 0, r.fail("argument not in its shortest form")
	}
	return major, arg, nil
}

func (r *reader) uint(n int) (uint64, error) {
	b, err := r.take(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (r *reader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, r.fail("truncated")
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// item checks one data item at the given container depth (the item, if a
// container, is at depth level).
func (r *reader) item(level int) error {
	start := r.off
	major, arg, err := r.head()
	if err != nil {
		return err
	}
	switch major {
	case majorUint, majorNeg:
		return nil
	case majorBytes:
		_, err := r.take(arg)
		return err
	case majorText:
		s, err := r.take(arg)
		if err == nil && !utf8.Valid(s) {
			err = r.fail("text not UTF-8")
		}
		return err
	case majorArray, majorMap, majorTag:
		if level > MaxExtensionDepth {
			return fmt.Errorf("%w: extension nested over %d levels", ErrTooDeep, MaxExtensionDepth)
		}
		switch major {
		case majorTag:
			return r.item(level + 1)
		case majorArray:
			if arg > uint64(len(r.b)-r.off) {
				return r.fail("truncated")
			}
			for i := uint64(0); i < arg; i++ {
				if err := r.item(level + 1); err != nil {
					return err
				}
			}
			return nil
		}
		if arg > uint64(len(r.b)-r.off)/2 {
			return r.fail("truncated")
		}
		var prev []byte
		for i := uint64(0); i < arg; i++ {
			ks := r.off
			km, _, err := r.head()
			if err != nil {
				return err
			}
			// Keys of maps inside extensions: integers, text or bytes (§7.2).
			if km != majorUint && km != majorNeg && km != majorText && km != majorBytes {
				return r.fail("map key of major type %d", km)
			}
			r.off = ks
			if err := r.item(level + 1); err != nil {
				return err
			}
			key := r.b[ks:r.off]
			if prev != nil && bytes.Compare(prev, key) >= 0 {
				return r.fail("map keys not in deterministic order, or repeated")
			}
			prev = key
			if err := r.item(level + 1); err != nil {
				return err
			}
		}
		return nil
	}
	// Major type 7.
	switch {
	case arg >= 20 && arg <= 23 && r.off-start == 1: // false, true, null, undefined
		return nil
	case arg == 25 && r.off-start == 1:
		b, err := r.take(2)
		if err != nil {
			return err
		}
		h := float16.Frombits(binary.BigEndian.Uint16(b))
		if h.IsNaN() && h.Bits() != 0x7e00 {
			return r.fail("a NaN other than 0xf97e00")
		}
		return nil
	case arg == 26 && r.off-start == 1:
		b, err := r.take(4)
		if err != nil {
			return err
		}
		f := math.Float32frombits(binary.BigEndian.Uint32(b))
		if f != f {
			return r.fail("a NaN other than 0xf97e00")
		}
		if float16.PrecisionFromfloat32(f) == float16.PrecisionExact {
			return r.fail("float not in its shortest form")
		}
		return nil
	case arg == 27 && r.off-start == 1:
		b, err := r.take(8)
		if err != nil {
			return err
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(b))
		if f != f {
			return r.fail("a NaN other than 0xf97e00")
		}
		if float64(float32(f)) == f {
			return r.fail("float not in its shortest form")
		}
		return nil
	}
	return r.fail("unassigned simple value")
}
