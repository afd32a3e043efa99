package ciphersuite

import (
	"testing"
)

// FuzzHostileInputs feeds attacker-controlled keys, signatures, KEM outputs
// and ciphertexts to every suite's operations: none may panic, and none
// may accept them.
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
			s.DecryptWithLabel(key, "x", nil, blob, sig)
			s.HPKEExportOpen(key, blob, nil, nil, 32)
			s.EncryptWithLabel(key, "x", nil, blob)
			s.HPKEPublicKey(key)
			s.NewSigner(key)
			s.AEADOpen(key, blob, nil, sig)
			s.DeriveKeyPair(blob)
		}
	})
}
