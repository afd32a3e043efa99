package content

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics, and what it accepts encodes back to
// exactly the same bytes and decodes to the same content.
func FuzzDecode(f *testing.F) {
	for _, ex := range draftExamples(f) {
		b, err := ex.c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(enc(f, top(map[any]any{-1: []any{[]any{[]any{1}}}, "parley.kt": []any{5, []byte{1}}}, nest(4))))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatalf("accepted content does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, again)
		}
		back, err := Decode(again)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("decode of the re-encoding: %v", err)
		}
		if _, err := ComputeMessageID("s", "r", b); err != nil {
			t.Fatalf("message id: %v", err)
		}
	})
}
