// Package codec implements the TLS presentation language as RFC 9420 uses it:
// fixed-width big-endian integers, and vectors whose length header is the
// variable-size integer of RFC 9420 §2.1.2 (a QUIC varint that must use the
// minimum encoding).
//
// Writer appends; Reader consumes with a sticky error, so a decoder can read a
// whole structure and check Err once. Reader never allocates based on a length
// it has not yet seen backed by input bytes, so hostile length headers cannot
// make it allocate without bound.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxVarint is the largest value a variable-size length header can carry
// (30 bits, RFC 9420 §2.1.2).
const MaxVarint = 1<<30 - 1

var (
	// ErrTruncated means the input ended before the structure did.
	ErrTruncated = errors.New("codec: truncated input")
	// ErrInvalidVarint means a length header used the reserved 0b11 prefix
	// or was not minimally encoded.
	ErrInvalidVarint = errors.New("codec: invalid variable-length integer")
	// ErrTrailingData means bytes were left over after a complete structure.
	ErrTrailingData = errors.New("codec: trailing data")
	// ErrInvalidValue means a field held a value its type does not allow
	// (an unknown enum, an optional marker other than 0 or 1, ...).
	ErrInvalidValue = errors.New("codec: invalid value")
)

// Writer builds an encoding by appending to a byte slice.
type Writer struct {
	buf []byte
}

// NewWriter returns a Writer that appends to buf (which may be nil).
func NewWriter(buf []byte) *Writer { return &Writer{buf: buf} }

// Bytes returns the encoding built so far.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// U8, U16, U32 and U64 append big-endian fixed-width integers.
func (w *Writer) U8(v uint8)   { w.buf = append(w.buf, v) }
func (w *Writer) U16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }
func (w *Writer) U32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }
func (w *Writer) U64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Bool writes a TLS boolean (one byte, 0 or 1).
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Raw appends b with no length header (a fixed-size array).
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// Varint appends v as a minimal variable-size integer. It panics if v exceeds
// MaxVarint: that is a programming error, since encoders only pass lengths of
// values they built themselves.
func (w *Writer) Varint(v int) {
	w.buf = AppendVarint(w.buf, v)
}

// Opaque appends b as opaque<V>: a varint length then the bytes.
func (w *Writer) Opaque(b []byte) {
	w.Varint(len(b))
	w.Raw(b)
}

// Vector appends a vector<V> whose body is written by body. The length
// header is patched in afterwards, so the body can be any sequence of
// elements.
func (w *Writer) Vector(body func(w *Writer)) {
	start := len(w.buf)
	// Reserve the largest header, write the body, then shift it down if a
	// smaller header suffices. Bodies are small in practice; the copy is cheap.
	w.buf = append(w.buf, 0, 0, 0, 0)
	body(w)
	n := len(w.buf) - start - 4
	var tmp [4]byte // keeps the header off the heap: Vector is on every hot path
	hdr := AppendVarint(tmp[:0], n)
	copy(w.buf[start+len(hdr):], w.buf[start+4:])
	w.buf = w.buf[:start+len(hdr)+n]
	copy(w.buf[start:], hdr)
}

// Optional writes the TLS optional<T> marker and, if present, the value.
func (w *Writer) Optional(present bool, value func(w *Writer)) {
	w.Bool(present)
	if present {
		value(w)
	}
}

// AppendVarint appends v to b in the minimal variable-size encoding.
func AppendVarint(b []byte, v int) []byte {
	switch {
	case v < 0 || v > MaxVarint:
		panic(fmt.Sprintf("codec: varint %d out of range", v))
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(v)|0x4000)
	default:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x80000000)
	}
}

// Reader consumes an encoding. The first error sticks: later reads return
// zero values, and Err reports it.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b. It does not copy b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Fail records err as the Reader's error if none is recorded yet. Decoders
// use it to report semantic problems (an unknown enum value, say) through
// the same sticky error.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Remaining returns the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.b) }

// Empty reports whether all input has been consumed (or an error stopped it).
func (r *Reader) Empty() bool { return r.err != nil || len(r.b) == 0 }

// Finish returns the sticky error, or ErrTrailingData if input is left over.
func (r *Reader) Finish() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailingData, len(r.b))
	}
	return nil
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = ErrTruncated
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// U8, U16, U32 and U64 read big-endian fixed-width integers.
func (r *Reader) U8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *Reader) U16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *Reader) U32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *Reader) U64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads a TLS boolean; any byte other than 0 or 1 is an error.
func (r *Reader) Bool() bool {
	switch r.U8() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.Fail(fmt.Errorf("%w: boolean", ErrInvalidValue))
		return false
	}
}

// Raw reads n bytes with no length header and returns a copy.
func (r *Reader) Raw(n int) []byte {
	b := r.take(n)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Varint reads a variable-size integer, rejecting the 0b11 prefix and
// non-minimal encodings (RFC 9420 §2.1.2).
func (r *Reader) Varint() int {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = ErrTruncated
		return 0
	}
	prefix := r.b[0] >> 6
	if prefix == 3 {
		r.err = ErrInvalidVarint
		return 0
	}
	n := 1 << prefix
	b := r.take(n)
	if b == nil {
		return 0
	}
	v := int(b[0] & 0x3f)
	for _, c := range b[1:] {
		v = v<<8 | int(c)
	}
	if prefix == 1 && v < 1<<6 || prefix == 2 && v < 1<<14 {
		r.err = ErrInvalidVarint
		return 0
	}
	return v
}

// Opaque reads opaque<V> and returns a copy of its bytes (never nil on
// success, so an empty value round-trips as empty).
func (r *Reader) Opaque() []byte {
	n := r.Varint()
	b := r.take(n)
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Vector reads a vector<V> header and returns a Reader over its body. The
// body's errors are the caller's to check; errors here (bad header, short
// input) stick on r and the returned Reader is already failed.
func (r *Reader) Vector() *Reader {
	n := r.Varint()
	b := r.take(n)
	if r.err != nil {
		return &Reader{err: r.err}
	}
	return &Reader{b: b}
}

// ReadVector reads a vector<V> and calls elem until its body is consumed.
// An error inside the body sticks on r. An elem that consumes nothing
// without failing is an error (ErrInvalidValue) rather than an endless loop.
func (r *Reader) ReadVector(elem func(r *Reader)) {
	v := r.Vector()
	for r.err == nil && !v.Empty() {
		before := len(v.b)
		elem(v)
		if v.err == nil && len(v.b) == before {
			v.Fail(fmt.Errorf("%w: vector element consumed no bytes", ErrInvalidValue))
		}
	}
	if v.err != nil {
		r.Fail(v.err)
	}
}

// Optional reads an optional<T> marker and reports whether a value follows.
func (r *Reader) Optional() bool { return r.Bool() }
