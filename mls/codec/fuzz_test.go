package codec

import (
	"bytes"
	"testing"
)

// FuzzReader drives a Reader over hostile input with a script taken from
// the input's first byte, checking that it never panics, never reads past
// the end, and that whatever decoded re-encodes to the bytes it came from.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0x01, 0x03, 'a', 'b', 'c'})
	f.Add([]byte{0x02, 0x04, 0x00, 0x01, 0x00, 0x02})
	f.Add([]byte{0x00, 0x40, 0x40})
	f.Add([]byte{0x01, 0xbf, 0xff, 0xff, 0xff})
	f.Add([]byte{0x03, 0xc0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x05, 0x03, 0x02, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		script, in := data[0], data[1:]
		r := NewReader(in)
		w := NewWriter(nil)
		for i := 0; i < 8 && !r.Empty(); i++ {
			switch (script >> (i % 4 * 2)) & 3 {
			case 0:
				v := r.Varint()
				if r.Err() == nil {
					w.Varint(v)
				}
			case 1:
				b := r.Opaque()
				if r.Err() == nil {
					w.Opaque(b)
				}
			case 2:
				var elems [][]byte
				r.ReadVector(func(r *Reader) { elems = append(elems, r.Opaque()) })
				if r.Err() == nil {
					w.Vector(func(w *Writer) {
						for _, e := range elems {
							w.Opaque(e)
						}
					})
				}
			case 3:
				v := r.U16()
				if r.Err() == nil {
					w.U16(v)
				}
			}
		}
		if r.Err() != nil {
			return
		}
		consumed := len(in) - r.Remaining()
		if !bytes.Equal(w.Bytes(), in[:consumed]) {
			t.Fatalf("re-encoding %x gave %x", in[:consumed], w.Bytes())
		}
	})
}
