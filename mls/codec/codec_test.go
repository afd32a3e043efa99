package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestVarintRejects(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrTruncated},
		{"40", ErrTruncated},
		{"800000", ErrTruncated},
		{"c0", ErrInvalidVarint},               // 0b11 prefix is reserved
		{"c000000000000000", ErrInvalidVarint}, // even with 8 bytes behind it
		{"ff", ErrInvalidVarint},               //
		{"4000", ErrInvalidVarint},             // 0 in two bytes
		{"403f", ErrInvalidVarint},             // 63 in two bytes
		{"80000000", ErrInvalidVarint},         // 0 in four bytes
		{"80003fff", ErrInvalidVarint},         // 16383 in four bytes
		{"8000003f", ErrInvalidVarint},         // 63 in four bytes
	} {
		b, _ := hex.DecodeString(tc.in)
		r := NewReader(b)
		if got := r.Varint(); got != 0 || !errors.Is(r.Err(), tc.want) {
			t.Errorf("Varint(%s) = %d, %v; want error %v", tc.in, got, r.Err(), tc.want)
		}
		// The error sticks: later reads fail too and return zero values.
		if r.U8() != 0 || r.Opaque() != nil || !errors.Is(r.Err(), tc.want) {
			t.Errorf("error did not stick after %s", tc.in)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	w := NewWriter(nil)
	w.U8(0xab)
	w.U16(0xbeef)
	w.U32(0xdeadbeef)
	w.U64(0x0123456789abcdef)
	w.Bool(true)
	w.Bool(false)
	w.Opaque(nil)
	w.Opaque(bytes.Repeat([]byte{1}, 64))
	w.Opaque(bytes.Repeat([]byte{2}, 16384))
	w.Vector(func(w *Writer) {
		for i := range 100 {
			w.U16(uint16(i))
		}
	})
	w.Vector(func(w *Writer) {}) // empty vector
	w.Optional(true, func(w *Writer) { w.U32(7) })
	w.Optional(false, func(w *Writer) { w.U32(8) })
	w.Raw([]byte("raw"))

	r := NewReader(w.Bytes())
	if r.U8() != 0xab || r.U16() != 0xbeef || r.U32() != 0xdeadbeef || r.U64() != 0x0123456789abcdef {
		t.Fatal("integers did not round-trip")
	}
	if !r.Bool() || r.Bool() {
		t.Fatal("booleans did not round-trip")
	}
	if b := r.Opaque(); b == nil || len(b) != 0 {
		t.Fatalf("empty opaque = %v, want empty non-nil", b)
	}
	if b := r.Opaque(); !bytes.Equal(b, bytes.Repeat([]byte{1}, 64)) {
		t.Fatal("64-byte opaque did not round-trip")
	}
	if b := r.Opaque(); !bytes.Equal(b, bytes.Repeat([]byte{2}, 16384)) {
		t.Fatal("16 KiB opaque did not round-trip")
	}
	var got []uint16
	r.ReadVector(func(r *Reader) { got = append(got, r.U16()) })
	if len(got) != 100 || got[99] != 99 {
		t.Fatalf("vector = %v", got)
	}
	if v := r.Vector(); v.Remaining() != 0 || v.Err() != nil {
		t.Fatal("empty vector did not round-trip")
	}
	if !r.Optional() || r.U32() != 7 || r.Optional() {
		t.Fatal("optionals did not round-trip")
	}
	if string(r.Raw(3)) != "raw" {
		t.Fatal("raw bytes did not round-trip")
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestVectorHeaderSizes(t *testing.T) {
	// Writer.Vector shrinks its reserved header to the minimal one.
	for _, n := range []int{0, 63, 64, 16383, 16384} {
		w := NewWriter([]byte{0xee})
		w.Vector(func(w *Writer) { w.Raw(make([]byte, n)) })
		want := append([]byte{0xee}, AppendVarint(nil, n)...)
		want = append(want, make([]byte, n)...)
		if !bytes.Equal(w.Bytes(), want) {
			t.Errorf("Vector of %d bytes encoded wrongly", n)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	r := NewReader([]byte{2})
	r.Bool()
	if !errors.Is(r.Err(), ErrInvalidValue) {
		t.Errorf("Bool(2): %v, want ErrInvalidValue", r.Err())
	}

	r = NewReader([]byte{0x05, 1, 2})
	if r.Opaque() != nil || !errors.Is(r.Err(), ErrTruncated) {
		t.Errorf("short opaque: %v, want ErrTruncated", r.Err())
	}

	r = NewReader([]byte{1, 2})
	r.U8()
	if err := r.Finish(); !errors.Is(err, ErrTrailingData) {
		t.Errorf("Finish with a byte left: %v, want ErrTrailingData", err)
	}

	// A length header claiming a gigabyte must fail without allocating it.
	r = NewReader([]byte{0xbf, 0xff, 0xff, 0xff, 0})
	allocs := testing.AllocsPerRun(10, func() {
		r := NewReader([]byte{0xbf, 0xff, 0xff, 0xff, 0})
		r.Opaque()
	})
	if allocs > 1 {
		t.Errorf("hostile length header made %v allocations", allocs)
	}
	if r.Opaque() != nil || !errors.Is(r.Err(), ErrTruncated) {
		t.Errorf("1 GiB opaque header: %v, want ErrTruncated", r.Err())
	}

	// An element decoder that reads nothing must not loop forever.
	r = NewReader([]byte{0x02, 0, 0})
	r.ReadVector(func(r *Reader) {})
	if !errors.Is(r.Err(), ErrInvalidValue) {
		t.Errorf("ReadVector with a no-op element: %v, want ErrInvalidValue", r.Err())
	}

	// An error inside a vector body sticks on the outer reader.
	r = NewReader([]byte{0x01, 0x07})
	r.ReadVector(func(r *Reader) { r.U16() })
	if !errors.Is(r.Err(), ErrTruncated) {
		t.Errorf("element overrunning its vector: %v, want ErrTruncated", r.Err())
	}
	r.Fail(errors.New("later"))
	if !errors.Is(r.Err(), ErrTruncated) {
		t.Error("Fail replaced the first error")
	}
}

func TestAppendVarintPanicsOnlyOutOfRange(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AppendVarint(MaxVarint+1) did not panic")
		}
	}()
	if got := AppendVarint(nil, MaxVarint); !bytes.Equal(got, []byte{0xbf, 0xff, 0xff, 0xff}) {
		t.Errorf("AppendVarint(MaxVarint) = %x", got)
	}
	AppendVarint(nil, MaxVarint+1)
}
