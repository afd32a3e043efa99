package keyschedule

import (
	"bytes"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
	"github.com/parleychat/parley/mls/treemath"
)

// FuzzSecretTreeUnmarshal feeds hostile persisted state to
// UnmarshalBinary: it must never panic, and whatever it accepts must
// re-encode to the same bytes and be usable.
func FuzzSecretTreeUnmarshal(f *testing.F) {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	tree, _ := NewSecretTree(s, bytes.Repeat([]byte{5}, s.Nh()), 8, Window{MaxForward: 20, MaxSkipped: 4})
	seed, _ := tree.MarshalBinary()
	f.Add(seed)
	tree.Key(3, ApplicationRatchet, 6)
	tree.Key(6, HandshakeRatchet, 0)
	seed, _ = tree.MarshalBinary()
	f.Add(seed)
	f.Add([]byte{1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 4, 0x80, 0, 0, 0, 0, 0, 3, 0xe8, 0, 0, 3, 0xe8, 0xbf, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var tr SecretTree
		if err := tr.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := tr.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted state does not re-encode to itself")
		}
		for _, l := range []treemath.LeafIndex{0, 1, treemath.LeafIndex(tr.LeafCount() - 1)} {
			tr.Key(l, ApplicationRatchet, 2)
			tr.Next(l, HandshakeRatchet)
		}
	})
}

// FuzzEpochUnmarshal does the same for persisted epoch secrets.
func FuzzEpochUnmarshal(f *testing.F) {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMP256_AES128GCM_SHA256_P256)
	e, _ := NewEpoch(s, make([]byte, s.Nh()), nil, nil, nil)
	seed, _ := e.MarshalBinary()
	f.Add(seed)
	f.Add([]byte{1, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ep Epoch
		if err := ep.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := ep.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted epoch does not re-encode to itself")
		}
		ep.Export("x", nil, 16)
	})
}

// FuzzPreSharedKeyID decodes hostile PreSharedKeyIDs.
func FuzzPreSharedKeyID(f *testing.F) {
	id := PreSharedKeyID{Type: PSKResumption, Usage: UsageBranch, GroupID: []byte("g"), Epoch: 3, Nonce: []byte("n")}
	seed, _ := id.MarshalBinary()
	f.Add(seed)
	f.Add([]byte{1, 2, 'i', 'd', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := codec.NewReader(data)
		got := DecodePreSharedKeyID(r)
		if r.Err() != nil {
			return
		}
		enc, err := got.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data[:len(data)-r.Remaining()]) {
			t.Fatalf("decoded PreSharedKeyID re-encodes differently")
		}
	})
}
