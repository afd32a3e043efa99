package historyfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// cheap keeps tests fast; real exports use DefaultKDF.
var cheap = KDF{Time: 1, MemoryKiB: 64, Threads: 1}

func seal(t testing.TB, plaintext, pass []byte, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newWriter(&buf, pass, cheap, chunk)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes: chunking must not depend on them.
	for p := plaintext; len(p) > 0; {
		k := min(len(p), 1000)
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(file, pass []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(file), pass)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	pass := []byte("correct horse battery staple")
	for _, n := range []int{0, 1, minChunk - 1, minChunk, minChunk + 1, 3 * minChunk, 3*minChunk + 17} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		for i := range pt {
			pt[i] ^= byte(i * 7)
		}
		file := seal(t, pt, pass, minChunk)
		got, err := open(file, pass)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
		chunks := max(1, (n+minChunk-1)/minChunk)
		if want := HeaderSize + n + chunks*tagSize; len(file) != want {
			t.Errorf("%d bytes: file of %d bytes, want %d", n, len(file), want)
		}
	}
}

func TestWrongPassphrase(t *testing.T) {
	file := seal(t, []byte("history"), []byte("right passphrase"), minChunk)
	if _, err := open(file, []byte("wrong passphrase")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("got %v, want ErrWrongPassphrase", err)
	}
}

// TestTampering: every truncation, extension, byte flip and chunk swap
// is refused; no plaintext of an unauthenticated chunk comes out.
func TestTampering(t *testing.T) {
	pass := []byte("passphrase")
	pt := make([]byte, 3*minChunk+100)
	for i := range pt {
		pt[i] = byte(i)
	}
	file := seal(t, pt, pass, minChunk)
	full := minChunk + tagSize
	for _, cut := range []int{HeaderSize, HeaderSize + 1, HeaderSize + full, HeaderSize + 2*full, HeaderSize + 3*full, len(file) - 1} {
		got, err := open(file[:cut], pass)
		if err == nil {
			t.Errorf("cut at %d: no error (%d bytes)", cut, len(got))
		}
	}
	if _, err := open(append(bytes.Clone(file), 0), pass); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a byte appended: %v", err)
	}
	for _, pos := range []int{0, 9, 12, 20, HeaderSize - 1, HeaderSize, HeaderSize + full + 5, len(file) - 1} {
		bad := bytes.Clone(file)
		bad[pos] ^= 0x40
		if got, err := open(bad, pass); err == nil || bytes.Equal(got, pt) {
			t.Errorf("flip at %d: accepted", pos)
		}
	}
	swapped := bytes.Clone(file)
	a, b := swapped[HeaderSize:HeaderSize+full], swapped[HeaderSize+full:HeaderSize+2*full]
	tmp := bytes.Clone(a)
	copy(a, b)
	copy(b, tmp)
	if _, err := open(swapped, pass); !errors.Is(err, ErrCorrupt) {
		t.Errorf("swapped chunks: %v", err)
	}
}

// TestCostBound: a header asking for more than MaxKDF is refused before
// any key is derived (it would take gigabytes).
func TestCostBound(t *testing.T) {
	file := seal(t, []byte("x"), []byte("passphrase"), minChunk)
	bad := bytes.Clone(file)
	binary.BigEndian.PutUint32(bad[len(magic)+2+4:], 4<<20) // 4 GiB
	if _, err := NewReader(bytes.NewReader(bad), []byte("passphrase")); !errors.Is(err, ErrUnacceptableCost) {
		t.Fatalf("got %v", err)
	}
	if _, err := NewReader(bytes.NewReader([]byte("%PDF-1.7 not ours")), []byte("p")); !errors.Is(err, ErrNotHistoryFile) {
		t.Fatalf("got %v", err)
	}
	v2 := bytes.Clone(file)
	v2[len(magic)] = 2
	if _, err := NewReader(bytes.NewReader(v2), []byte("passphrase")); !errors.Is(err, ErrVersion) {
		t.Fatalf("got %v", err)
	}
}

// FuzzParseHeader: a header is accepted only if it re-encodes to the
// same bytes.
func FuzzParseHeader(f *testing.F) {
	h := Header{KDF: cheap, Chunk: DefaultChunk}
	f.Add(h.Marshal())
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Marshal(), b) {
			t.Fatalf("accepted a header that does not round-trip: %x", b)
		}
	})
}

// FuzzReader: the unaltered file round-trips; any alteration (a flipped
// byte, a cut) is an error, and no plaintext that was not written comes
// out.
func FuzzReader(f *testing.F) {
	f.Add([]byte("hello"), uint32(0), byte(0), uint32(0))
	f.Add(bytes.Repeat([]byte("a"), 5000), uint32(HeaderSize+3), byte(1), uint32(0))
	f.Add(bytes.Repeat([]byte("b"), 9000), uint32(0), byte(0), uint32(20))
	pass := []byte("fuzz passphrase")
	f.Fuzz(func(t *testing.T, pt []byte, pos uint32, flip byte, cut uint32) {
		if len(pt) > 1<<16 {
			return
		}
		file := seal(t, pt, pass, minChunk)
		altered := bytes.Clone(file)
		changed := false
		if flip != 0 {
			at := int(pos) % len(altered)
			if at >= len(magic)+2 && at < len(magic)+2+9 {
				return // the KDF costs: up to 1 GiB per try (TestCostBound bounds them)
			}
			altered[at] ^= flip
			changed = true
		}
		if c := int(cut) % (len(altered) + 1); cut != 0 && c < len(altered) {
			altered = altered[:c]
			changed = true
		}
		r, err := NewReader(bytes.NewReader(altered), pass)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(r)
		}
		if !changed {
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("round trip: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("an altered file was accepted")
		}
		if !bytes.HasPrefix(pt, got) {
			t.Fatalf("released plaintext that was never written")
		}
	})
}
