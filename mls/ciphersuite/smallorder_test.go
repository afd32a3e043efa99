package ciphersuite

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
)

// TestEd25519SmallOrderTable checks the computed table independently: each
// entry must map, through the birational map u = (1+y)/(1-y) to Curve25519,
// to a point that X25519 sends to zero (crypto/ecdh refuses such a point),
// and there must be the seven libsodium lists.
func TestEd25519SmallOrderTable(t *testing.T) {
	if len(ed25519SmallOrder) != 7 {
		t.Fatalf("%d small-order encodings, want 7", len(ed25519SmallOrder))
	}
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i, enc := range ed25519SmallOrder {
		be := make([]byte, 32)
		for j := range be {
			be[j] = enc[31-j]
		}
		y := new(big.Int).Mod(new(big.Int).SetBytes(be), p)
		den := new(big.Int).Mod(new(big.Int).Sub(big.NewInt(1), y), p)
		if den.Sign() == 0 {
			continue // y = 1: the identity, which maps to the point at infinity
		}
		u := new(big.Int).Mul(new(big.Int).Add(big.NewInt(1), y), new(big.Int).ModInverse(den, p))
		u.Mod(u, p)
		ube := u.FillBytes(make([]byte, 32))
		ule := make([]byte, 32)
		for j := range ule {
			ule[j] = ube[31-j]
		}
		pub, err := ecdh.X25519().NewPublicKey(ule)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if _, err := priv.ECDH(pub); err == nil {
			t.Errorf("entry %d (y=%x) is not of small order", i, enc)
		}
	}
}

// TestSmallOrderKeysRefused shows the attack and that it fails: a key and
// signature made without any private key, which RFC 8032 verification
// accepts, are refused by every Parley verifier.
func TestSmallOrderKeysRefused(t *testing.T) {
	msg := []byte("I never sent this")

	// Ed25519: A = R = identity (y = 1), S = 0.
	identity := make([]byte, 32)
	identity[0] = 1
	sig := append(append([]byte(nil), identity...), make([]byte, 32)...)
	full, err := labelled("MLSMessageContentTBS", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(identity, full, sig) {
		t.Fatal("crypto/ed25519 refused the identity key; the premise of this test changed")
	}
	// Ed448: A = R = identity (y = 1), S = 0.
	identity448 := make([]byte, ed448.PublicKeySize)
	identity448[0] = 1
	sig448 := append(append([]byte(nil), identity448...), make([]byte, ed448.PublicKeySize)...)
	if !ed448.Verify(identity448, full, sig448, "") {
		t.Fatal("circl ed448 refused the identity key; the premise of this test changed")
	}

	for _, id := range Supported() {
		s, _ := Lookup(id)
		key, signature := identity, sig
		switch s.sig.(type) {
		case ed448Scheme:
			key, signature = identity448, sig448
		case ed25519Scheme:
		default:
			continue // prime-order curves have no small subgroup
		}
		err := s.VerifyWithLabel(key, "MLSMessageContentTBS", msg, signature)
		if !errors.Is(err, ErrVerify) || !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%v: forged signature: err = %v, want ErrVerify and ErrInvalidKey", s, err)
		}
	}

	// Every Ed25519 small-order encoding, with either sign bit, is refused.
	for _, enc := range ed25519SmallOrder {
		for _, signBit := range []byte{0, 0x80} {
			key := enc
			key[31] |= signBit
			if !ed25519HasSmallOrder(key[:]) {
				t.Errorf("%x not flagged", key)
			}
		}
	}
}

// TestHonestKeysNotSmallOrder: generated keys are never refused.
func TestHonestKeysNotSmallOrder(t *testing.T) {
	for i := 0; i < 200; i++ {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if ed25519HasSmallOrder(pub) {
			t.Fatalf("honest Ed25519 key %x flagged", pub)
		}
		pub448, _, err := ed448.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if ed448HasSmallOrder(pub448) {
			t.Fatalf("honest Ed448 key %x flagged", pub448)
		}
	}
}
