package vrf

import (
	"bytes"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to ParsePublicKey, ProofToHash and
// Verify. None may panic; a proof may be accepted only if it is the one
// Prove makes for that key and alpha (for the keys whose private key the
// test knows), and Verify's beta must be ProofToHash's.
func FuzzVerify(f *testing.F) {
	known := map[[PublicKeySize]byte]*PrivateKey{}
	for _, tv := range rfc9381Vectors {
		priv, err := NewPrivateKey(unhex(f, tv.sk))
		if err != nil {
			f.Fatal(err)
		}
		known[priv.pub.encoded] = priv
		f.Add(unhex(f, tv.pk), unhex(f, tv.alpha), unhex(f, tv.pi))
	}
	fixed := testKey(f, "fuzz")
	known[fixed.pub.encoded] = fixed
	for _, alpha := range []string{"", "alice", "bob@example.org"} {
		f.Add(fixed.Public().Bytes(), []byte(alpha), fixed.Prove([]byte(alpha)))
	}
	for _, s := range smallOrderEncodings {
		f.Add(unhex(f, s), []byte("alice"), make([]byte, ProofSize))
	}
	f.Add(nonCanonical(2, false), []byte{}, append(nonCanonical(1, true), make([]byte, cLen+qLen)...))
	f.Add([]byte{}, []byte{}, []byte{})

	f.Fuzz(func(t *testing.T, pk, alpha, proof []byte) {
		if len(pk) == ptLen {
			checkStringToPoint(t, pk)
		}
		if len(proof) >= ptLen {
			checkStringToPoint(t, proof[:ptLen])
		}

		beta, hashErr := ProofToHash(proof)
		if hashErr == nil && (len(proof) != ProofSize || len(beta) != OutputSize) {
			t.Fatalf("ProofToHash accepted a %d-byte proof, gave %d bytes", len(proof), len(beta))
		}

		check := func(pub *PublicKey, priv *PrivateKey) {
			vbeta, err := pub.Verify(alpha, proof)
			if err != nil {
				return
			}
			if hashErr != nil || !bytes.Equal(vbeta, beta) {
				t.Fatalf("Verify accepted a proof ProofToHash gives %x, %v for (Verify: %x)", beta, hashErr, vbeta)
			}
			if priv != nil && !bytes.Equal(proof, priv.Prove(alpha)) {
				t.Fatalf("Verify accepted a proof that Prove did not make: key %x alpha %x proof %x", pub.encoded, alpha, proof)
			}
		}
		check(fixed.Public(), fixed)

		pub, err := ParsePublicKey(pk)
		if err != nil {
			return
		}
		if !bytes.Equal(pub.Bytes(), pk) {
			t.Fatalf("ParsePublicKey(%x).Bytes() = %x", pk, pub.Bytes())
		}
		if !validateKey(pub.y) {
			t.Fatalf("ParsePublicKey accepted the small-order %x", pk)
		}
		check(pub, known[pub.encoded])
	})
}

// FuzzMutatedProof makes a real proof and changes it: the changed proof,
// and the real proof under another alpha, must be refused.
func FuzzMutatedProof(f *testing.F) {
	priv := testKey(f, "fuzz mutate")
	pub := priv.Public()
	f.Add([]byte("alice"), []byte{0, 1}, []byte("bob"))
	f.Add([]byte(""), []byte{79, 0x80}, []byte("\x00"))
	f.Add([]byte("alice"), []byte{40, 0xff, 63, 1, 5}, []byte("alice\x00"))

	f.Fuzz(func(t *testing.T, alpha, mutation, otherAlpha []byte) {
		proof := priv.Prove(alpha)
		// mutation is (position, xor) pairs; an odd last byte also
		// appends itself (a too-long proof), or, if it is 0, drops the
		// proof's last byte.
		bad := bytes.Clone(proof)
		for i := 0; i+1 < len(mutation); i += 2 {
			bad[int(mutation[i])%ProofSize] ^= mutation[i+1]
		}
		if len(mutation)%2 == 1 {
			if last := mutation[len(mutation)-1]; last == 0 {
				bad = bad[:ProofSize-1]
			} else {
				bad = append(bad, last)
			}
		}
		if _, err := pub.Verify(alpha, bad); err == nil && !bytes.Equal(bad, proof) {
			t.Fatalf("a mutated proof was accepted: alpha %x proof %x mutated %x", alpha, proof, bad)
		}
		if _, err := pub.Verify(otherAlpha, proof); err == nil && !bytes.Equal(otherAlpha, alpha) {
			t.Fatalf("the proof for %x was accepted for %x", alpha, otherAlpha)
		}
		if _, err := pub.Verify(alpha, proof); err != nil {
			t.Fatalf("a real proof was refused: %v", err)
		}
	})
}
