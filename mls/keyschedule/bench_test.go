package keyschedule

import (
	"bytes"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// BenchmarkSecretTreeNext is the per-message cost of the sender ratchet.
func BenchmarkSecretTreeNext(b *testing.B) {
	s := lookup(b, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	tree, err := NewSecretTree(s, bytes.Repeat([]byte{1}, s.Nh()), 16384, Window{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tree.Next(9999, ApplicationRatchet); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewEpoch is one run of the §8 key schedule.
func BenchmarkNewEpoch(b *testing.B) {
	s := lookup(b, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	init, gc := bytes.Repeat([]byte{1}, s.Nh()), make([]byte, 120)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewEpoch(s, init, nil, nil, gc); err != nil {
			b.Fatal(err)
		}
	}
}
