package log

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseEntry: no panic, only ErrMalformedEntry, and what decodes
// encodes back to the same bytes.
func FuzzParseEntry(f *testing.F) {
	b, _ := Entry{Epoch: 3, Time: t0, PrefixRoot: root(1)}.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedEntry) {
				t.Fatal(err)
			}
			return
		}
		again, err := e.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %x -> %x, %v", data, again, err)
		}
	})
}

// FuzzParseCheckpoint: no panic, only ErrMalformedCheckpoint, and what
// parses has exactly the text it was parsed from.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(Checkpoint{Origin: origin, Size: 5, Hash: tlog.Hash(root(2))}.Text())
	f.Add([]byte("a\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, ErrMalformedCheckpoint) {
				t.Fatal(err)
			}
			return
		}
		if !bytes.Equal(c.Text(), text) {
			t.Fatalf("parsed %q from %q", c.Text(), text)
		}
	})
}

// FuzzOpenCheckpoint: arbitrary signed-note bytes never panic, fail only
// with this package's sentinels, and open only when the log's key signed
// exactly that text.
func FuzzOpenCheckpoint(f *testing.F) {
	k := newKey(f, origin)
	w := newKey(f, "witness.example")
	policy := Policy{Origin: origin, Log: k.verifier, Witnesses: []note.Verifier{w.verifier}}
	good, _ := Sign(Checkpoint{Origin: origin, Size: 9, Hash: tlog.Hash(root(3))}, k.signer, w.signer)
	f.Add(good)
	f.Add([]byte("x\n\n— a b\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		sc, err := OpenCheckpoint(msg, policy)
		if err != nil {
			for _, s := range []error{ErrMalformedCheckpoint, ErrSignature, ErrWrongOrigin, ErrQuorum} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		// Re-signing the parsed text must give the same log signature line
		// (Ed25519 is deterministic), so the input was signed by the key.
		resigned, err := Sign(sc.Checkpoint, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		logLine := resigned[bytes.LastIndex(resigned, []byte("\n— "))+1:]
		if !bytes.Contains(msg, logLine) || !bytes.HasPrefix(msg, sc.Text()) {
			t.Fatalf("opened a checkpoint the log did not sign: %q", msg)
		}
	})
}

// FuzzDecodeProof: no panic, only ErrMalformedProof, round trip.
func FuzzDecodeProof(f *testing.F) {
	b, _ := EncodeProof([]tlog.Hash{tlog.Hash(root(1))})
	f.Add(b)
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeProof(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedProof) {
				t.Fatal(err)
			}
			return
		}
		again, err := EncodeProof(p)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %x -> %x, %v", data, again, err)
		}
	})
}

// FuzzAdvance gives a verifier at an honest checkpoint a forked checkpoint
// with an arbitrary consistency proof: it must never be accepted.
func FuzzAdvance(f *testing.F) {
	k := newKey(f, origin)
	policy := Policy{Origin: origin, Log: k.verifier}
	honest, cps := newLog(f, k, 12)
	fork, err := Open(&MemStore{}, origin, k.signer)
	if err != nil {
		f.Fatal(err)
	}
	var forkCP []byte
	for i := range 12 {
		r := root(i)
		if i == 6 {
			r[9] = 1
		}
		_, forkCP, _ = fork.Append(r, t0.Add(time.Duration(i)*time.Second))
	}
	p, _ := honest.ProveConsistency(7, 12)
	enc, _ := EncodeProof(p)
	f.Add(enc)
	p, _ = fork.ProveConsistency(7, 12)
	enc, _ = EncodeProof(p)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, proof []byte) {
		p, err := DecodeProof(proof)
		if err != nil {
			return
		}
		v, err := NewVerifier(policy, cps[6])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Advance(forkCP, p); !errors.Is(err, ErrInconsistent) {
			t.Fatalf("forked checkpoint: %v", err)
		}
	})
}
