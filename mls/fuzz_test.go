package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// fuzzRoundTrip decodes data and, if that succeeds, requires the
// re-encoding to equal the input.
func fuzzRoundTrip(t *testing.T, data []byte, v roundTripper) {
	if err := v.Unmarshal(data); err != nil {
		return
	}
	if enc := v.Marshal(); !bytes.Equal(enc, data) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", data, enc)
	}
}

// vectorSeeds adds hex fields of the tree vectors as seeds.
func vectorSeeds(f *testing.F, file string, fields ...string) {
	raw, err := os.ReadFile(shareddata.Path(f, "testdata", "mls", file))
	if err != nil {
		f.Fatal(err)
	}
	var entries []map[string]any
	if err := json.Unmarshal(raw, &entries); err != nil {
		f.Fatal(err)
	}
	for i, e := range entries {
		if i >= 8 {
			break
		}
		for _, field := range fields {
			if s, ok := e[field].(string); ok {
				if b, err := hex.DecodeString(s); err == nil {
					f.Add(b)
				}
			}
		}
	}
}

func FuzzMLSMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(MLSMessage)) })
}

func FuzzKeyPackage(f *testing.F) {
	kp := sampleKeyPackage()
	f.Add(kp.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(KeyPackage)) })
}

func FuzzWelcome(f *testing.F) {
	for _, m := range sampleMessages() {
		if m.Welcome != nil {
			f.Add(m.Welcome.Marshal())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(Welcome)) })
}

func FuzzGroupInfo(f *testing.F) {
	for _, m := range sampleMessages() {
		if m.GroupInfo != nil {
			f.Add(m.GroupInfo.Marshal())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(GroupInfo)) })
}

func FuzzLeafNode(f *testing.F) {
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		ln := sampleLeafNode(src)
		f.Add(ln.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(LeafNode)) })
}

func FuzzRatchetTree(f *testing.F) {
	vectorSeeds(f, "tree-validation.json", "tree")
	vectorSeeds(f, "tree-operations.json", "tree_before", "tree_after")
	suite, err := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := DecodeRatchetTree(suite, data)
		if err != nil {
			return
		}
		if enc := tree.Marshal(); !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, enc)
		}
		// Structural queries must not panic on any decoded tree.
		// (A few leaves: in a sparse tree each call is linear.)
		for i := uint32(0); i < tree.NumLeaves() && i < 8; i++ {
			tree.FilteredDirectPath(i)
		}
		tree.Clone().truncate()
		// Validation must reject, never panic on, any decoded tree.
		_ = tree.Validate(&TreeValidation{GroupID: []byte("g")})
		tree.TreeHash()
	})
}

func FuzzGroupSecrets(f *testing.F) {
	f.Add((&GroupSecrets{JoinerSecret: b("js"), PathSecret: &PathSecret{PathSecret: b("ps")}, PSKs: []PreSharedKeyID{{Type: PSKTypeResumption, Usage: ResumptionPSKUsageReInit, GroupID: b("g"), Epoch: 1, Nonce: b("n")}}}).Marshal())
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(GroupSecrets)) })
}

func FuzzTreeKeys(f *testing.F) {
	k := NewTreeKeys(3, b("leaf"))
	k.SetPrivateKey(7, b("parent"))
	f.Add(k.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(TreeKeys)) })
}
