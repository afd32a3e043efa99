package vrf

import (
	"crypto/ed25519"
	"testing"
)

// The VRF benchmarks, with crypto/ed25519 on the same key and input as the
// baseline: docs/benchmarks.md gives the figures as ratios to
// BenchmarkEd25519Verify of the same run. An ECVRF proof costs about one
// Ed25519 signature plus encode_to_curve and two more scalar
// multiplications; its verification about two Ed25519 verifications.

var benchAlpha = []byte("alice@example.org")

func BenchmarkProve(b *testing.B) {
	priv := testKey(b, "bench")
	b.ReportAllocs()
	for b.Loop() {
		priv.Prove(benchAlpha)
	}
}

func BenchmarkVerify(b *testing.B) {
	priv := testKey(b, "bench")
	pub := priv.Public()
	proof := priv.Prove(benchAlpha)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pub.Verify(benchAlpha, proof); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProofToHash(b *testing.B) {
	proof := testKey(b, "bench").Prove(benchAlpha)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ProofToHash(proof); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePublicKey(b *testing.B) {
	enc := testKey(b, "bench").Public().Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePublicKey(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Sign is the baseline for Prove: crypto/ed25519 with the
// same seed and message.
func BenchmarkEd25519Sign(b *testing.B) {
	key := ed25519.NewKeyFromSeed(testKey(b, "bench").Seed())
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(key, benchAlpha)
	}
}

// BenchmarkEd25519Verify is the baseline for Verify.
func BenchmarkEd25519Verify(b *testing.B) {
	key := ed25519.NewKeyFromSeed(testKey(b, "bench").Seed())
	pub := key.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(key, benchAlpha)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, benchAlpha, sig) {
			b.Fatal("invalid")
		}
	}
}
