package prefix

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseProof feeds arbitrary bytes to the decoder: it must not panic,
// must refuse with ErrMalformedProof, and whatever it accepts must encode
// back to exactly the same bytes (one encoding per proof).
func FuzzParseProof(f *testing.F) {
	tr, entries := sampleTree(f, 64)
	for _, e := range entries[:8] {
		_, _, p := tr.Lookup(e.Index)
		b, _ := p.MarshalBinary()
		f.Add(b)
		x := e.Index
		x[31] ^= 1
		_, _, p = tr.Lookup(x)
		b, _ = p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{3, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProof(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedProof) {
				t.Fatalf("error %v is not ErrMalformedProof", err)
			}
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded proof does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip changed the encoding:\n%x\n%x", data, again)
		}
	})
}

// FuzzVerify checks arbitrary decoded proofs for arbitrary indexes against
// a fixed tree: only the tree's true answer may verify.
func FuzzVerify(f *testing.F) {
	tr, entries := sampleTree(f, 64)
	root := tr.Root()
	for _, e := range entries[:8] {
		_, _, p := tr.Lookup(e.Index)
		b, _ := p.MarshalBinary()
		f.Add(e.Index[:], e.Value[:], b)
	}
	f.Fuzz(func(t *testing.T, index, value, proof []byte) {
		if len(index) != IndexSize || len(value) != HashSize {
			return
		}
		p, err := ParseProof(proof)
		if err != nil {
			return
		}
		x, v := Index(index), Value(value)
		want, present, _ := tr.Lookup(x)
		if VerifyInclusion(root, x, v, p) == nil && (!present || want != v) {
			t.Fatalf("forged inclusion of %s -> %x verifies", x, v)
		}
		if VerifyNonInclusion(root, x, p) == nil && present {
			t.Fatalf("forged non-inclusion of present %s verifies", x)
		}
	})
}
