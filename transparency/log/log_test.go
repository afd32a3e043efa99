package log

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const origin = "parley.example/kt"

type key struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKey(t testing.TB, name string) key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, v}
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func root(i int) [32]byte {
	var r [32]byte
	r[0], r[1], r[31] = byte(i), byte(i>>8), 0xaa
	return r
}

// newLog returns a log of n epochs, one second apart, and each epoch's
// signed checkpoint.
func newLog(t testing.TB, k key, n int) (*Log, [][]byte) {
	t.Helper()
	l, err := Open(&MemStore{}, origin, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	var cps [][]byte
	for i := range n {
		_, cp, err := l.Append(root(i), t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	return l, cps
}

func TestEntryEncoding(t *testing.T) {
	e := Entry{Epoch: 7, Time: time.UnixMilli(1_700_000_000_123).UTC(), PrefixRoot: root(3)}
	b, err := e.MarshalBinary()
	if err != nil || len(b) != EntrySize {
		t.Fatalf("MarshalBinary: %d bytes, %v", len(b), err)
	}
	got, err := ParseEntry(b)
	if err != nil || got != e {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:47], append(b, 0)} {
		if _, err := ParseEntry(bad); !errors.Is(err, ErrMalformedEntry) {
			t.Errorf("%d bytes: %v", len(bad), err)
		}
	}
	huge := bytes.Clone(b)
	huge[8] = 0x80
	if _, err := ParseEntry(huge); !errors.Is(err, ErrMalformedEntry) {
		t.Errorf("time beyond int64 milliseconds: %v", err)
	}
	if _, err := (Entry{Time: time.Unix(-1, 0)}).MarshalBinary(); !errors.Is(err, ErrMalformedEntry) {
		t.Errorf("time before 1970: %v", err)
	}
}

func TestCheckpointText(t *testing.T) {
	c := Checkpoint{Origin: origin, Size: 12, Hash: tlog.Hash(root(1))}
	got, err := ParseCheckpoint(c.Text())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	h := "AQCqAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKo="
	if _, err := ParseCheckpoint([]byte(origin + "\n12\n" + h + "\n")); err != nil {
		t.Fatalf("valid text: %v", err)
	}
	for name, text := range map[string]string{
		"empty":            "",
		"no newline":       origin + "\n12\n" + h,
		"extension line":   origin + "\n12\n" + h + "\nextra\n",
		"empty origin":     "\n12\n" + h + "\n",
		"padded origin":    " " + origin + "\n12\n" + h + "\n",
		"control origin":   "a\tb\n12\n" + h + "\n",
		"leading zero":     origin + "\n012\n" + h + "\n",
		"plus sign":        origin + "\n+12\n" + h + "\n",
		"negative":         origin + "\n-1\n" + h + "\n",
		"overflow":         origin + "\n9223372036854775808\n" + h + "\n",
		"short hash":       origin + "\n12\nAQID\n",
		"unpadded hash":    origin + "\n12\n" + strings.TrimRight(h, "=") + "\n",
		"non-canonical":    origin + "\n12\n" + h[:42] + "p=\n",
		"url-safe base64":  origin + "\n12\n-_" + h[2:] + "\n",
		"too long":         strings.Repeat("a", MaxNoteSize+1),
		"origin too long":  strings.Repeat("a", maxOriginLen+1) + "\n12\n" + h + "\n",
		"windows newlines": origin + "\r\n12\r\n" + h + "\r\n",
	} {
		if _, err := ParseCheckpoint([]byte(text)); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("%s: %v, want ErrMalformedCheckpoint", name, err)
		}
	}
}

func TestOpenCheckpointPolicy(t *testing.T) {
	logKey := newKey(t, origin)
	w1, w2, stranger := newKey(t, "witness1.example"), newKey(t, "witness2.example"), newKey(t, "stranger.example")
	c := Checkpoint{Origin: origin, Size: 3, Hash: tlog.Hash(root(9))}
	signed, err := Sign(c, logKey.signer)
	if err != nil {
		t.Fatal(err)
	}
	p0 := Policy{Origin: origin, Log: logKey.verifier}
	sc, err := OpenCheckpoint(signed, p0)
	if err != nil || sc.Checkpoint != c || !bytes.Equal(sc.Note, signed) {
		t.Fatalf("OpenCheckpoint: %+v, %v", sc, err)
	}

	// Witnesses cosign one after the other; a stranger's signature rides
	// along without counting.
	pw := Policy{Origin: origin, Log: logKey.verifier, Witnesses: []note.Verifier{w1.verifier, w2.verifier}, Quorum: 2}
	one, err := Cosign(sc, w1.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(one, pw); !errors.Is(err, ErrQuorum) {
		t.Fatalf("1 of 2 witnesses: %v, want ErrQuorum", err)
	}
	pw1 := pw
	pw1.Quorum = 1
	sc1, err := OpenCheckpoint(one, pw1)
	if err != nil || len(sc1.Witnesses) != 1 || sc1.Witnesses[0] != "witness1.example" {
		t.Fatalf("1 of 2 with quorum 1: %+v, %v", sc1, err)
	}
	strange, err := Cosign(sc1, stranger.signer)
	if err != nil {
		t.Fatal(err)
	}
	scS, err := OpenCheckpoint(strange, pw1)
	if err != nil {
		t.Fatal(err)
	}
	two, err := Cosign(scS, w2.signer)
	if err != nil {
		t.Fatal(err)
	}
	sc2, err := OpenCheckpoint(two, pw)
	if err != nil || len(sc2.Witnesses) != 2 {
		t.Fatalf("2 of 2: %+v, %v", sc2, err)
	}
	if !bytes.Contains(two, []byte("— stranger.example ")) {
		t.Fatal("Cosign dropped a signature by a key it did not know")
	}
	// A stranger's signature alone never counts.
	if _, err := OpenCheckpoint(strange, pw); !errors.Is(err, ErrQuorum) {
		t.Fatalf("stranger as second witness: %v, want ErrQuorum", err)
	}

	// The log's signature is always required.
	bySomeoneElse, _ := Sign(c, w1.signer)
	if _, err := OpenCheckpoint(bySomeoneElse, pw1); !errors.Is(err, ErrSignature) {
		t.Fatalf("witness signature without the log's: %v, want ErrSignature", err)
	}
	byStranger, _ := Sign(c, stranger.signer)
	if _, err := OpenCheckpoint(byStranger, p0); !errors.Is(err, ErrSignature) {
		t.Fatalf("unknown signer only: %v, want ErrSignature", err)
	}
	// Any change to the text breaks the log's signature.
	tampered := bytes.Replace(signed, []byte("\n3\n"), []byte("\n4\n"), 1)
	if _, err := OpenCheckpoint(tampered, p0); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered size: %v, want ErrSignature", err)
	}
	// A bad signature by a known witness refuses the checkpoint.
	badW := badLastSignature(t, one)
	if _, err := OpenCheckpoint(badW, pw1); !errors.Is(err, ErrSignature) {
		t.Fatalf("bad witness signature: %v, want ErrSignature", err)
	}
	// Another log's checkpoint, signed with a key the client trusts.
	other, _ := Sign(Checkpoint{Origin: "other.example/kt", Size: 3}, logKey.signer)
	if _, err := OpenCheckpoint(other, p0); !errors.Is(err, ErrWrongOrigin) {
		t.Fatalf("other origin: %v, want ErrWrongOrigin", err)
	}
	// Not a note, or too big.
	for _, bad := range [][]byte{nil, []byte("hello\n"), c.Text(), make([]byte, MaxNoteSize+1)} {
		if _, err := OpenCheckpoint(bad, p0); !errors.Is(err, ErrMalformedCheckpoint) && !errors.Is(err, ErrSignature) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := OpenCheckpoint(signed, Policy{Origin: origin}); err == nil {
		t.Fatal("policy without a log key accepted a checkpoint")
	}
	if _, err := OpenCheckpoint(signed, Policy{Origin: origin, Log: logKey.verifier, Quorum: 1}); err == nil {
		t.Fatal("quorum larger than the witness list accepted")
	}
}

// badLastSignature flips a bit in the last signature line of a note.
func badLastSignature(t *testing.T, msg []byte) []byte {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(msg, []byte("\n")), []byte("\n"))
	last := lines[len(lines)-1]
	i := bytes.LastIndexByte(last, ' ')
	sig := last[i+1:]
	// Change a character well inside the signature (not the key hash).
	j := len(sig) - 10
	if sig[j] == 'A' {
		sig[j] = 'B'
	} else {
		sig[j] = 'A'
	}
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

func TestLogProofs(t *testing.T) {
	k := newKey(t, origin)
	policy := Policy{Origin: origin, Log: k.verifier}
	l, cps := newLog(t, k, 21)
	for size := 1; size <= 21; size++ {
		sc, err := OpenCheckpoint(cps[size-1], policy)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Size != int64(size) {
			t.Fatalf("checkpoint %d has size %d", size, sc.Size)
		}
		for epoch := range uint64(size) {
			e, err := l.Entry(epoch)
			if err != nil {
				t.Fatal(err)
			}
			if e.PrefixRoot != root(int(epoch)) || !e.Time.Equal(t0.Add(time.Duration(epoch)*time.Second)) {
				t.Fatalf("entry %d: %+v", epoch, e)
			}
			p, err := l.ProveEntry(epoch, int64(size))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := EncodeProof(p)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := DecodeProof(enc)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyEntry(sc.Checkpoint, e, dec); err != nil {
				t.Fatalf("epoch %d in %d: %v", epoch, size, err)
			}
			// The entry shown as another epoch, with another root or time,
			// or checked against another checkpoint, is refused.
			for name, bad := range map[string]Entry{
				"other epoch": {Epoch: (epoch + 1) % uint64(size), Time: e.Time, PrefixRoot: e.PrefixRoot},
				"other root":  {Epoch: epoch, Time: e.Time, PrefixRoot: root(99)},
				"other time":  {Epoch: epoch, Time: e.Time.Add(time.Millisecond), PrefixRoot: e.PrefixRoot},
			} {
				if bad == e {
					continue
				}
				if err := VerifyEntry(sc.Checkpoint, bad, p); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("%s: %v, want ErrNotIncluded", name, err)
				}
			}
			for i := range p {
				q := append(tlog.RecordProof(nil), p...)
				q[i][7] ^= 1
				if err := VerifyEntry(sc.Checkpoint, e, q); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("tampered proof hash %d: %v", i, err)
				}
			}
			if len(p) > 0 {
				if err := VerifyEntry(sc.Checkpoint, e, p[1:]); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("shortened proof: %v", err)
				}
			}
			if err := VerifyEntry(sc.Checkpoint, e, append(p, p...)); len(p) > 0 && !errors.Is(err, ErrNotIncluded) {
				t.Fatalf("lengthened proof: %v", err)
			}
		}
		e, _ := l.Entry(0)
		e.Epoch = uint64(size)
		if err := VerifyEntry(sc.Checkpoint, e, nil); !errors.Is(err, ErrNotIncluded) {
			t.Fatalf("epoch beyond the checkpoint: %v", err)
		}
	}
	if _, err := l.ProveEntry(21, 21); !errors.Is(err, ErrNoSuchEpoch) {
		t.Fatalf("ProveEntry beyond the tree: %v", err)
	}
	if _, err := l.ProveEntry(0, 22); !errors.Is(err, ErrNoSuchEpoch) {
		t.Fatalf("ProveEntry in a tree larger than the log: %v", err)
	}
	if _, err := l.Entry(21); !errors.Is(err, ErrNoSuchEpoch) {
		t.Fatalf("Entry beyond the log: %v", err)
	}
	if _, err := l.Entry(^uint64(0)); !errors.Is(err, ErrNoSuchEpoch) {
		t.Fatalf("Entry(max): %v", err)
	}
	if _, err := l.ProveConsistency(5, 22); !errors.Is(err, ErrNoSuchEpoch) {
		t.Fatalf("ProveConsistency beyond the log: %v", err)
	}
	if _, err := l.ProveConsistency(6, 5); !errors.Is(err, ErrNoSuchEpoch) {
		t.Fatalf("ProveConsistency backwards: %v", err)
	}
}

func TestAppendTimes(t *testing.T) {
	k := newKey(t, origin)
	store := &MemStore{}
	l, err := Open(store, origin, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append(root(0), t0); err != nil {
		t.Fatal(err)
	}
	// The same millisecond is fine; an earlier one is not.
	if _, _, err := l.Append(root(1), t0.Add(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append(root(2), t0.Add(-time.Millisecond)); !errors.Is(err, ErrTimeGoesBack) {
		t.Fatalf("earlier time: %v, want ErrTimeGoesBack", err)
	}
	if l.Size() != 2 {
		t.Fatalf("a refused append changed the size to %d", l.Size())
	}
	// Reopening the store restores the size, the root and the last time.
	cp, _ := l.Checkpoint()
	l2, err := Open(store, origin, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	cp2, _ := l2.Checkpoint()
	if l2.Size() != 2 || !bytes.Equal(cp, cp2) {
		t.Fatalf("reopened log: size %d, checkpoint\n%s\nwant\n%s", l2.Size(), cp2, cp)
	}
	if _, _, err := l2.Append(root(2), t0.Add(-time.Millisecond)); !errors.Is(err, ErrTimeGoesBack) {
		t.Fatalf("reopened log forgot the last time: %v", err)
	}
	if _, err := Open(store, "", k.signer); !errors.Is(err, ErrMalformedCheckpoint) {
		t.Fatalf("empty origin: %v", err)
	}
}

func TestMemStoreRefuses(t *testing.T) {
	m := &MemStore{}
	if err := m.Append(1, nil, nil); err == nil {
		t.Fatal("append out of order accepted")
	}
	if err := m.Append(0, []byte("x"), []tlog.Hash{{}, {}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Append(1, []byte("y"), nil); err == nil {
		t.Fatal("append with the hashes in the wrong place accepted")
	}
	if _, err := m.ReadHashes([]int64{5}); err == nil {
		t.Fatal("read of a missing hash succeeded")
	}
	if _, err := m.ReadRecord(-1); err == nil {
		t.Fatal("read of record -1 succeeded")
	}
}

func TestProofEncoding(t *testing.T) {
	p := []tlog.Hash{tlog.Hash(root(1)), tlog.Hash(root(2))}
	b, err := EncodeProof(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProof(b)
	if err != nil || len(got) != 2 || got[0] != p[0] || got[1] != p[1] {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	empty, _ := EncodeProof(nil)
	if got, err := DecodeProof(empty); err != nil || len(got) != 0 {
		t.Fatalf("empty proof: %v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"truncated": b[:len(b)-1],
		"trailing":  append(bytes.Clone(b), 0),
		"too many":  append([]byte{MaxProofHashes + 1}, make([]byte, 32*(MaxProofHashes+1))...),
	} {
		if _, err := DecodeProof(bad); !errors.Is(err, ErrMalformedProof) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := EncodeProof(make([]tlog.Hash, MaxProofHashes+1)); !errors.Is(err, ErrMalformedProof) {
		t.Fatalf("encoding an oversize proof: %v", err)
	}
}
