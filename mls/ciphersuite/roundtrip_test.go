package ciphersuite

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestLookup(t *testing.T) {
	ids := Supported()
	if len(ids) != 8 {
		t.Fatalf("Supported() has %d suites, want 8", len(ids))
	}
	for _, id := range ids {
		s, err := Lookup(id)
		if err != nil || s.ID() != id || s.String() == "" {
			t.Errorf("Lookup(%d) = %v, %v", id, s, err)
		}
	}
	for _, id := range []ID{0, 8, 0xF000, 0xFFFF} {
		if _, err := Lookup(id); !errors.Is(err, ErrUnsupportedSuite) {
			t.Errorf("Lookup(%#x) err = %v, want ErrUnsupportedSuite", id, err)
		}
	}
}

// TestRoundTrips exercises every operation on every suite, with the X-Wing
// suite first among equals: it has no interop vectors, so these round trips
// and determinism checks are what stand behind it.
func TestRoundTrips(t *testing.T) {
	for _, id := range Supported() {
		s, _ := Lookup(id)
		t.Run(s.String(), func(t *testing.T) {
			signer, priv, err := s.GenerateSigner(nil)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := signer.SignWithLabel("LeafNodeTBS", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(signer.Public(), "LeafNodeTBS", []byte("content"), sig); err != nil {
				t.Errorf("verify own signature: %v", err)
			}
			if err := s.VerifyWithLabel(signer.Public(), "LeafNodeTBS", []byte("contenu"), sig); !errors.Is(err, ErrVerify) {
				t.Errorf("verify over other content: %v, want ErrVerify", err)
			}
			bad := append([]byte(nil), sig...)
			bad[len(bad)/2] ^= 1
			if err := s.VerifyWithLabel(signer.Public(), "LeafNodeTBS", []byte("content"), bad); !errors.Is(err, ErrVerify) {
				t.Errorf("verify flipped signature: %v, want ErrVerify", err)
			}
			if err := s.VerifyWithLabel([]byte{1, 2, 3}, "LeafNodeTBS", []byte("content"), sig); !errors.Is(err, ErrVerify) {
				t.Errorf("verify with garbage key: %v, want ErrVerify", err)
			}
			again, err := s.NewSigner(priv)
			if err != nil || !bytes.Equal(again.Public(), signer.Public()) {
				t.Errorf("NewSigner(persisted key) = %v, %v", again, err)
			}

			// DeriveKeyPair is deterministic and distinct per ikm.
			ikm := bytes.Repeat([]byte{7}, s.Nh())
			priv1, pub1, err := s.DeriveKeyPair(ikm)
			if err != nil {
				t.Fatal(err)
			}
			priv2, pub2, _ := s.DeriveKeyPair(ikm)
			if !bytes.Equal(priv1, priv2) || !bytes.Equal(pub1, pub2) {
				t.Error("DeriveKeyPair is not deterministic")
			}
			_, pub3, _ := s.DeriveKeyPair(append(ikm[:len(ikm)-1:len(ikm)-1], 8))
			if bytes.Equal(pub1, pub3) {
				t.Error("DeriveKeyPair gave the same key for different ikm")
			}
			if pub, err := s.HPKEPublicKey(priv1); err != nil || !bytes.Equal(pub, pub1) {
				t.Errorf("HPKEPublicKey(derived) = %x, %v", pub, err)
			}

			kemOut, ct, err := s.EncryptWithLabel(pub1, "UpdatePathNode", []byte("ctx"), []byte("path secret"))
			if err != nil {
				t.Fatal(err)
			}
			pt, err := s.DecryptWithLabel(priv1, "UpdatePathNode", []byte("ctx"), kemOut, ct)
			if err != nil || string(pt) != "path secret" {
				t.Errorf("DecryptWithLabel = %q, %v", pt, err)
			}
			if _, err := s.DecryptWithLabel(priv1, "Welcome", []byte("ctx"), kemOut, ct); !errors.Is(err, ErrDecrypt) {
				t.Errorf("decrypt with other label: %v, want ErrDecrypt", err)
			}
			if _, err := s.DecryptWithLabel(priv1, "UpdatePathNode", []byte("ctx2"), kemOut, ct); !errors.Is(err, ErrDecrypt) {
				t.Errorf("decrypt with other context: %v, want ErrDecrypt", err)
			}
			otherPriv, _, _ := s.GenerateKeyPair(nil)
			if _, err := s.DecryptWithLabel(otherPriv, "UpdatePathNode", []byte("ctx"), kemOut, ct); err == nil {
				t.Error("decrypt with another private key succeeded")
			}
			if _, err := s.DecryptWithLabel(priv1, "UpdatePathNode", []byte("ctx"), kemOut[:len(kemOut)-1], ct); err == nil {
				t.Error("decrypt with truncated kem_output succeeded")
			}
			if _, _, err := s.EncryptWithLabel([]byte{4, 5}, "x", nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("encrypt to garbage key: %v, want ErrInvalidKey", err)
			}

			kemOut, secret, err := s.HPKEExport(pub1, []byte("info"), []byte("MLS 1.0 external init secret"), s.Nh())
			if err != nil {
				t.Fatal(err)
			}
			opened, err := s.HPKEExportOpen(priv1, kemOut, []byte("info"), []byte("MLS 1.0 external init secret"), s.Nh())
			if err != nil || !bytes.Equal(opened, secret) || len(secret) != s.Nh() {
				t.Errorf("HPKEExportOpen = %x, %v; want %x", opened, err, secret)
			}
			other, _ := s.HPKEExportOpen(priv1, kemOut, []byte("info2"), []byte("MLS 1.0 external init secret"), s.Nh())
			if bytes.Equal(other, secret) {
				t.Error("export with other info gave the same secret")
			}
			if _, _, err := s.HPKEExport(pub1, nil, nil, 1<<20); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("export 1 MiB: %v, want ErrInvalidLength", err)
			}

			key, nonce := s.RandomBytes(s.Nk()), s.RandomBytes(s.Nn())
			sealed, err := s.AEADSeal(key, nonce, []byte("aad"), []byte("hello"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := s.AEADOpen(key, nonce, []byte("aad"), sealed); err != nil || string(pt) != "hello" {
				t.Errorf("AEADOpen = %q, %v", pt, err)
			}
			if _, err := s.AEADOpen(key, nonce, []byte("aaD"), sealed); !errors.Is(err, ErrDecrypt) {
				t.Errorf("AEADOpen with other aad: %v, want ErrDecrypt", err)
			}
			if _, err := s.AEADSeal(key[1:], nonce, nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("AEADSeal short key: %v, want ErrInvalidKey", err)
			}
			if _, err := s.AEADOpen(key, nonce[1:], nil, sealed); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("AEADOpen short nonce: %v, want ErrInvalidLength", err)
			}

			if got := s.ExpandWithLabel(key, "x", nil, 1<<16); got != nil {
				t.Error("ExpandWithLabel accepted a length over uint16")
			}
			if got := s.KDFExpand(key, nil, 255*s.Nh()+1); got != nil {
				t.Error("KDFExpand accepted a length over 255*Nh")
			}
			if len(s.MAC(key, []byte("x"))) != s.Nh() || len(s.Hash(nil)) != s.Nh() || len(s.KDFExtract(nil, key)) != s.Nh() {
				t.Error("MAC/Hash/KDFExtract output is not Nh bytes")
			}
		})
	}
}

func TestBadPrivateKeys(t *testing.T) {
	for _, id := range Supported() {
		s, _ := Lookup(id)
		// (A short ECDSA scalar is accepted and left-padded, so the bad
		// keys here are an all-zero one and one longer than any scalar.)
		for _, priv := range [][]byte{nil, bytes.Repeat([]byte{0xff}, 200)} {
			if _, err := s.NewSigner(priv); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%v NewSigner(%d bytes): %v, want ErrInvalidKey", s, len(priv), err)
			}
			if _, err := s.DecryptWithLabel(priv, "x", nil, make([]byte, 32), make([]byte, 32)); err == nil {
				t.Errorf("%v DecryptWithLabel with %d-byte key succeeded", s, len(priv))
			}
		}
	}
}

// TestShortECDSAScalar checks that a scalar with its leading zero bytes
// dropped (as some encoders write P-521 keys) parses as the padded one.
func TestShortECDSAScalar(t *testing.T) {
	s, _ := Lookup(MLS_256_DHKEMP521_AES256GCM_SHA512_P521)
	full := append(make([]byte, 2), bytes.Repeat([]byte{0x11}, 64)...) // 66 bytes
	a, err := s.NewSigner(full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.NewSigner(full[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Public(), b.Public()) {
		t.Error("short scalar parsed to another key")
	}
}

func mustLookup(b *testing.B, id ID) *Suite {
	s, err := Lookup(id)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkEd25519SignVerify(b *testing.B) {
	benchSignVerify(b, mustLookup(b, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519))
}

func benchSignVerify(b *testing.B, s *Suite) {
	signer, _, err := s.GenerateSigner(nil)
	if err != nil {
		b.Fatal(err)
	}
	pub, content := signer.Public(), make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		sig, err := signer.SignWithLabel("FramedContentTBS", content)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "FramedContentTBS", content, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAEADSealOpen1KiB(b *testing.B) {
	benchAEAD(b, mustLookup(b, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519))
}

func benchAEAD(b *testing.B, s *Suite) {
	key, nonce, pt := s.RandomBytes(s.Nk()), s.RandomBytes(s.Nn()), make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		ct, err := s.AEADSeal(key, nonce, nil, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.AEADOpen(key, nonce, nil, ct); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHPKESealOpen(b *testing.B) {
	for _, id := range []ID{MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519} {
		s := mustLookup(b, id)
		b.Run(s.String(), func(b *testing.B) { benchHPKE(b, s) })
	}
}

func benchHPKE(b *testing.B, s *Suite) {
	priv, pub, err := s.GenerateKeyPair(nil)
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		kemOut, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", nil, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", nil, kemOut, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSuites runs the labelled operations for every suite.
func BenchmarkSuites(b *testing.B) {
	for _, id := range Supported() {
		s := mustLookup(b, id)
		name := fmt.Sprintf("%04x", uint16(id))
		b.Run(name+"/SignVerify", func(b *testing.B) { benchSignVerify(b, s) })
		b.Run(name+"/AEADSealOpen1KiB", func(b *testing.B) { benchAEAD(b, s) })
		b.Run(name+"/HPKESealOpen", func(b *testing.B) { benchHPKE(b, s) })
		b.Run(name+"/DeriveSecret", func(b *testing.B) {
			secret := s.RandomBytes(s.Nh())
			for b.Loop() {
				s.DeriveSecret(secret, "epoch")
			}
		})
	}
}
