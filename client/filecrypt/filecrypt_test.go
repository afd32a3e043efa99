package filecrypt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

func encrypt(t testing.TB, pt, key []byte) ([]byte, []byte) {
	e, err := NewEncrypter(bytes.NewReader(pt), key)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := io.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	return ct, e.Digest()
}

func decrypt(ct, key, digest []byte, size int64) ([]byte, error) {
	d, err := NewDecrypter(bytes.NewReader(ct), key)
	if err != nil {
		return nil, err
	}
	pt, err := io.ReadAll(d)
	if err != nil {
		return pt, err
	}
	return pt, d.Verify(digest, size)
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 7, 4 * ChunkSize} {
		pt := make([]byte, size)
		for i := range pt {
			pt[i] = byte(i * 7)
		}
		key := NewKey()
		ct, digest := encrypt(t, pt, key)
		if int64(len(ct)) != CiphertextSize(int64(size)) {
			t.Errorf("size %d: ciphertext %d bytes, CiphertextSize says %d", size, len(ct), CiphertextSize(int64(size)))
		}
		want := sha256.Sum256(pt)
		if !bytes.Equal(digest, want[:]) {
			t.Errorf("size %d: wrong digest", size)
		}
		got, err := decrypt(ct, key, digest, int64(size))
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("size %d: decrypt: %v", size, err)
		}
	}
}

func TestTamper(t *testing.T) {
	pt := bytes.Repeat([]byte("parley"), ChunkSize/2) // three chunks
	key := NewKey()
	ct, digest := encrypt(t, pt, key)
	size := int64(len(pt))
	chunk := ChunkSize + tagSize

	tests := []struct {
		name string
		ct   []byte
		key  []byte
	}{
		{"wrong key", ct, NewKey()},
		{"flipped bit", func() []byte { c := bytes.Clone(ct); c[10] ^= 1; return c }(), key},
		{"truncated at chunk boundary", ct[:2*chunk], key},
		{"truncated mid-chunk", ct[:chunk+100], key},
		{"empty", nil, key},
		{"extended", append(bytes.Clone(ct), ct[:chunk]...), key},
		{"swapped chunks", append(append(bytes.Clone(ct[chunk:2*chunk]), ct[:chunk]...), ct[2*chunk:]...), key},
	}
	for _, tt := range tests {
		_, err := decrypt(tt.ct, tt.key, digest, size)
		if !errors.Is(err, ErrAuth) {
			t.Errorf("%s: got %v, want ErrAuth", tt.name, err)
		}
	}
	other := sha256.Sum256([]byte("other"))
	if _, err := decrypt(ct, key, other[:], size); !errors.Is(err, ErrDigest) {
		t.Errorf("wrong digest: %v", err)
	}
	if _, err := decrypt(ct, key, digest, size+1); !errors.Is(err, ErrDigest) {
		t.Errorf("wrong size: %v", err)
	}
}

func TestBadKey(t *testing.T) {
	if _, err := NewEncrypter(bytes.NewReader(nil), make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
}

func FuzzDecrypter(f *testing.F) {
	key := make([]byte, KeySize)
	ct, _ := encrypt(f, []byte("hello"), key)
	f.Add(ct)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ct []byte) {
		d, err := NewDecrypter(bytes.NewReader(ct), key)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := io.ReadAll(d)
		if err == nil && !bytes.Equal(pt, []byte("hello")) && len(pt) != 0 {
			// Any accepted ciphertext must be a genuine encryption under
			// the key; the only ones the seed corpus can reach are these.
			t.Fatalf("forged plaintext %q", pt)
		}
	})
}

func BenchmarkEncrypt(b *testing.B) {
	pt := make([]byte, 8<<20)
	key := NewKey()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		e, _ := NewEncrypter(bytes.NewReader(pt), key)
		io.Copy(io.Discard, e)
	}
}

// A sender holding the key could end a stream of whole chunks with an
// extra, empty final chunk: the same plaintext under a second encoding,
// which Encrypter never makes (a full chunk is final when nothing
// follows). The decrypter refuses it, so every file has one encoding.
func TestEmptyFinalChunkAfterDataRefused(t *testing.T) {
	key := NewKey()
	aead, err := newAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), ChunkSize)
	ct := aead.Seal(nil, nonce(0, false), data, nil)
	ct = aead.Seal(ct, nonce(1, true), nil, nil)
	d, err := NewDecrypter(bytes.NewReader(ct), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(d); !errors.Is(err, ErrAuth) {
		t.Fatalf("a whole chunk then an empty final one: %v, want ErrAuth", err)
	}
	// The same plaintext as Encrypter writes it is accepted.
	ct, _ = encrypt(t, data, key)
	d, _ = NewDecrypter(bytes.NewReader(ct), key)
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the honest encoding: %d bytes, %v", len(got), err)
	}
}
