package log

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func mustAdvance(t *testing.T, v *Verifier, signed []byte, proof tlog.TreeProof) *SignedCheckpoint {
	t.Helper()
	sc, err := v.Advance(signed, proof)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestVerifierFollowsTheLog(t *testing.T) {
	k := newKey(t, origin)
	policy := Policy{Origin: origin, Log: k.verifier}
	l, cps := newLog(t, k, 40)
	v, err := NewVerifier(policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Latest() != nil {
		t.Fatal("new verifier has a latest checkpoint")
	}
	// Trust on first use, then every jump forward with its proof.
	prev := int64(3)
	mustAdvance(t, v, cps[prev-1], nil)
	for _, size := range []int64{4, 8, 9, 16, 17, 31, 40} {
		p, err := l.ProveConsistency(prev, size)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := EncodeProof(p)
		dec, err := DecodeProof(enc)
		if err != nil {
			t.Fatal(err)
		}
		sc := mustAdvance(t, v, cps[size-1], dec)
		if sc.Size != size || v.Latest().Size != size {
			t.Fatalf("after advancing to %d the latest is %d", size, v.Latest().Size)
		}
		prev = size
	}
	// The same checkpoint again needs no proof.
	mustAdvance(t, v, cps[39], nil)

	// A restarted client resumes from the note it persisted.
	v2, err := NewVerifier(policy, v.Latest().Note)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Latest().Size != 40 {
		t.Fatalf("restored verifier at %d", v2.Latest().Size)
	}
	if _, err := NewVerifier(policy, []byte("junk")); err == nil {
		t.Fatal("NewVerifier accepted a junk trusted checkpoint")
	}
}

func TestVerifierFromEmptyLog(t *testing.T) {
	k := newKey(t, origin)
	l, err := Open(&MemStore{}, origin, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(Policy{Origin: origin, Log: k.verifier}, nil)
	mustAdvance(t, v, empty, nil)
	mustAdvance(t, v, empty, nil)
	_, cp, _ := l.Append(root(0), t0)
	p, err := l.ProveConsistency(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustAdvance(t, v, cp, p)
}

// inconsistent checks err is an *InconsistencyError of the given kind whose
// evidence opens under policy.
func inconsistent(t *testing.T, err error, kind Inconsistency, policy Policy) {
	t.Helper()
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("%v, want ErrInconsistent", err)
	}
	var ie *InconsistencyError
	if !errors.As(err, &ie) || ie.Kind != kind {
		t.Fatalf("%v, want a %v", err, kind)
	}
	for _, n := range [][]byte{ie.Latest.Note, ie.New.Note} {
		if _, err := OpenCheckpoint(n, policy); err != nil {
			t.Fatalf("evidence does not open: %v", err)
		}
	}
	if ie.Latest.Hash == ie.New.Hash && ie.Latest.Size == ie.New.Size {
		t.Fatal("evidence shows two equal checkpoints")
	}
}

func TestVerifierRefusesForksAndRollbacks(t *testing.T) {
	k := newKey(t, origin)
	policy := Policy{Origin: origin, Log: k.verifier}
	honest, cps := newLog(t, k, 20)

	// A fork: the same key signs a log that differs from epoch 10 on, as a
	// compromised directory showing one client a ghost device would.
	fork, err := Open(&MemStore{}, origin, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	var forkCPs [][]byte
	for i := range 20 {
		r := root(i)
		if i >= 10 {
			r[5] = 0x66
		}
		_, cp, err := fork.Append(r, t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		forkCPs = append(forkCPs, cp)
	}

	v, _ := NewVerifier(policy, cps[11]) // honest, size 12
	before := v.Latest()

	// Same size, other root.
	_, err = v.Advance(forkCPs[11], nil)
	inconsistent(t, err, Fork, policy)
	// Larger, with the fork's own (valid for the fork) proof from 12.
	p, _ := fork.ProveConsistency(12, 18)
	_, err = v.Advance(forkCPs[17], p)
	inconsistent(t, err, Fork, policy)
	// Larger, with the honest log's proof.
	p, _ = honest.ProveConsistency(12, 18)
	_, err = v.Advance(forkCPs[17], p)
	inconsistent(t, err, Fork, policy)
	// The honest checkpoint with a tampered, shortened or missing proof.
	for i := range p {
		q := append(tlog.TreeProof(nil), p...)
		q[i][0] ^= 1
		_, err = v.Advance(cps[17], q)
		inconsistent(t, err, Fork, policy)
	}
	_, err = v.Advance(cps[17], p[1:])
	inconsistent(t, err, Fork, policy)
	_, err = v.Advance(cps[17], nil)
	inconsistent(t, err, Fork, policy)
	// A rollback to an older honest checkpoint, or to the fork's.
	_, err = v.Advance(cps[5], nil)
	inconsistent(t, err, Rollback, policy)
	_, err = v.Advance(forkCPs[10], nil)
	inconsistent(t, err, Rollback, policy)

	if v.Latest() != before {
		t.Fatal("a refused checkpoint changed the verifier")
	}
	// The honest extension is still accepted.
	mustAdvance(t, v, cps[17], p)

	// Once a client has been shown the fork, it stays on it and refuses
	// the honest log: whichever it saw first, the other is evidence.
	vf, _ := NewVerifier(policy, forkCPs[15])
	p, _ = honest.ProveConsistency(16, 20)
	_, err = vf.Advance(cps[19], p)
	inconsistent(t, err, Fork, policy)
}

func TestVerifierPolicyErrorsAreNotInconsistency(t *testing.T) {
	k, w := newKey(t, origin), newKey(t, "witness.example")
	policy := Policy{Origin: origin, Log: k.verifier, Witnesses: []note.Verifier{w.verifier}, Quorum: 1}
	_, cps := newLog(t, k, 3)
	v, _ := NewVerifier(policy, nil)
	if _, err := v.Advance(cps[2], nil); !errors.Is(err, ErrQuorum) || errors.Is(err, ErrInconsistent) {
		t.Fatalf("uncosigned checkpoint: %v, want ErrQuorum only", err)
	}
	sc, err := OpenCheckpoint(cps[2], Policy{Origin: origin, Log: k.verifier})
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := Cosign(sc, w.signer)
	if err != nil {
		t.Fatal(err)
	}
	got := mustAdvance(t, v, cosigned, nil)
	if len(got.Witnesses) != 1 {
		t.Fatalf("witnesses %v", got.Witnesses)
	}
	if _, err := NewVerifier(policy, cps[2]); !errors.Is(err, ErrQuorum) {
		t.Fatalf("trusted checkpoint below the policy: %v", err)
	}
}
