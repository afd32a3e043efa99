package ciphersuite

import (
	"bytes"
	"testing"
)

// FuzzHostileInputs feeds attacker-controlled keys, signatures, KEM outputs
// and ciphertexts to every suite's operations: none may panic, none of the
// authenticating ones may accept them (a signature, an AEAD or HPKE
// ciphertext made without the key), and the unauthenticated derivations
// must be consistent and deterministic.
func FuzzHostileInputs(f *testing.F) {
	f.Add([]byte{}, []byte{}, []byte{})
	f.Add(make([]byte, 32), make([]byte, 64), make([]byte, 32))
	f.Add(make([]byte, 56), make([]byte, 114), make([]byte, 56))
	f.Add(append([]byte{4}, make([]byte, 64)...), make([]byte, 72), make([]byte, 1120))
	f.Fuzz(func(t *testing.T, key, sig, blob []byte) {
		for _, id := range Supported() {
			s, _ := Lookup(id)
			if s.VerifyWithLabel(key, "x", blob, sig) == nil {
				t.Fatalf("%v: hostile signature verified", s)
			}
			if pt, err := s.DecryptWithLabel(key, "x", nil, blob, sig); err == nil {
				t.Fatalf("%v: DecryptWithLabel accepted a ciphertext made without the key (%d bytes out)", s, len(pt))
			}
			if pt, err := s.AEADOpen(key, blob, nil, sig); err == nil {
				t.Fatalf("%v: AEADOpen accepted a ciphertext made without the key (%d bytes out)", s, len(pt))
			}
			// The HPKE exporter authenticates nothing (any KEM output
			// gives some secret), but it must give a secret of the length
			// asked, the same one every time.
			if e1, err := s.HPKEExportOpen(key, blob, nil, nil, 32); err == nil {
				e2, err := s.HPKEExportOpen(key, blob, nil, nil, 32)
				if err != nil || len(e1) != 32 || !bytes.Equal(e1, e2) {
					t.Fatalf("%v: HPKEExportOpen gave %d bytes, then %x, %v", s, len(e1), e2, err)
				}
			}
			s.EncryptWithLabel(key, "x", nil, blob)
			s.NewSigner(key)
			s.HPKEPublicKey(key)
			// A derived key pair is a key pair: its private key gives its
			// public key, and the same input gives the same pair.
			if priv, pub, err := s.DeriveKeyPair(blob); err == nil {
				got, err := s.HPKEPublicKey(priv)
				if err != nil || !bytes.Equal(got, pub) {
					t.Fatalf("%v: DeriveKeyPair's public key %x, HPKEPublicKey of its private key %x, %v", s, pub, got, err)
				}
				priv2, pub2, err := s.DeriveKeyPair(blob)
				if err != nil || !bytes.Equal(priv, priv2) || !bytes.Equal(pub, pub2) {
					t.Fatalf("%v: DeriveKeyPair is not deterministic", s)
				}
			}
		}
	})
}
