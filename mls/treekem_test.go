package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

type treeKEMVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

func (v *treeKEMVector) groupContext(suite *ciphersuite.Suite, treeHash []byte) []byte {
	gc := GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: suite.ID(), GroupID: v.GroupID, Epoch: v.Epoch,
		TreeHash: treeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash, Extensions: Extensions{},
	}
	return gc.Marshal()
}

func TestTreeKEMVectors(t *testing.T) {
	var vectors []treeKEMVector
	loadVectors(t, "treekem.json", &vectors)
	passed, unsupported := 0, 0
	for n, v := range vectors {
		t.Run(fmt.Sprintf("%d/suite%d", n, v.CipherSuite), func(t *testing.T) {
			suite := vectorSuite(t, v.CipherSuite)
			if suite == nil {
				unsupported++
				return
			}
			runTreeKEMVector(t, suite, &v)
			if !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("treekem.json: %d/%d passed, %d unsupported suite", passed, len(vectors), unsupported)
	if passed+unsupported != len(vectors) {
		t.Fail()
	}
}

func runTreeKEMVector(t *testing.T, suite *ciphersuite.Suite, v *treeKEMVector) {
	tree, err := DecodeRatchetTree(suite, v.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.VerifyParentHashes(); err != nil {
		t.Fatal(err)
	}
	// Load every member's private state, checking it against the tree.
	keys := map[uint32]*TreeKeys{}
	signers := map[uint32]ciphersuite.Signer{}
	for _, lp := range v.LeavesPrivate {
		k := NewTreeKeys(lp.Index, lp.EncryptionPriv)
		for _, ps := range lp.PathSecrets {
			priv, pub, err := deriveNodeKey(suite, ps.PathSecret)
			if err != nil {
				t.Fatal(err)
			}
			if n := tree.Node(ps.Node); n == nil || !bytes.Equal(n.EncryptionKey(), pub) {
				t.Fatalf("leaf %d: path secret for node %d does not match the tree", lp.Index, ps.Node)
			}
			k.SetPrivateKey(ps.Node, priv)
		}
		var rt TreeKeys
		if err := rt.Unmarshal(k.Marshal()); err != nil || !bytes.Equal(rt.Marshal(), k.Marshal()) {
			t.Fatalf("TreeKeys round trip: %v", err)
		}
		keys[lp.Index] = k
		s, err := suite.NewSigner(lp.SignaturePriv)
		if err != nil {
			t.Fatal(err)
		}
		signers[lp.Index] = s
	}

	for n, up := range v.UpdatePaths {
		var path UpdatePath
		if err := path.Unmarshal(up.UpdatePath); err != nil {
			t.Fatal(err)
		}
		merged := tree.Clone()
		if err := merged.MergeUpdatePath(up.Sender, &path, v.GroupID); err != nil {
			t.Fatalf("sender %d: merge: %v", up.Sender, err)
		}
		if got := merged.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) {
			t.Fatalf("sender %d: tree hash after = %x, want %x", up.Sender, got, up.TreeHashAfter)
		}
		if err := merged.VerifyParentHashes(); err != nil {
			t.Fatalf("sender %d: %v", up.Sender, err)
		}
		gc := v.groupContext(suite, up.TreeHashAfter)
		for leaf, k := range keys {
			if leaf == up.Sender {
				continue
			}
			cs, nk, err := merged.DecryptUpdatePath(k, up.Sender, &path, gc, nil)
			if err != nil {
				t.Fatalf("sender %d, receiver %d: %v", up.Sender, leaf, err)
			}
			if !bytes.Equal(cs, up.CommitSecret) {
				t.Fatalf("sender %d, receiver %d: commit secret differs", up.Sender, leaf)
			}
			if ps := up.PathSecrets[leaf]; ps != nil {
				// The receiver must now hold the key derived from the
				// path secret it was sent, at the lowest common node.
				priv, _, _ := deriveNodeKey(suite, ps)
				found := false
				for _, x := range nk.Nodes() {
					if p, _ := nk.PrivateKey(x); bytes.Equal(p, priv) {
						found = true
					}
				}
				if !found {
					t.Fatalf("sender %d, receiver %d: path secret key not installed", up.Sender, leaf)
				}
			}
		}

		// A freshly generated path from the same sender round-trips
		// through every other member.
		// (Once per vector: the check is slow under -race.)
		signer, ok := signers[up.Sender]
		if !ok || n > 0 {
			continue
		}
		checkFreshPath(t, tree, up.Sender, signer, keys, v)
	}
}

func checkFreshPath(t *testing.T, tree *RatchetTree, sender uint32, signer ciphersuite.Signer, keys map[uint32]*TreeKeys, v *treeKEMVector) {
	t.Helper()
	suite := tree.Suite()
	committed := tree.Clone()
	gen, err := committed.GenerateUpdatePath(rand.Reader, sender, tree.Leaf(sender), signer, v.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	if err := committed.VerifyParentHashes(); err != nil {
		t.Fatalf("fresh path: %v", err)
	}
	gc := v.groupContext(suite, committed.TreeHash())
	path, err := gen.Encrypt(committed, gc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var decoded UpdatePath
	if err := decoded.Unmarshal(path.Marshal()); err != nil {
		t.Fatal(err)
	}
	for leaf, k := range keys {
		if leaf == sender {
			continue
		}
		merged := tree.Clone()
		if err := merged.MergeUpdatePath(sender, &decoded, v.GroupID); err != nil {
			t.Fatalf("fresh path from %d: merge at %d: %v", sender, leaf, err)
		}
		if !bytes.Equal(merged.TreeHash(), committed.TreeHash()) {
			t.Fatalf("fresh path from %d: receiver %d's tree hash differs", sender, leaf)
		}
		cs, _, err := merged.DecryptUpdatePath(k, sender, &decoded, gc, nil)
		if err != nil {
			t.Fatalf("fresh path from %d: receiver %d: %v", sender, leaf, err)
		}
		if !bytes.Equal(cs, gen.CommitSecret) {
			t.Fatalf("fresh path from %d: receiver %d: commit secret differs", sender, leaf)
		}
	}
}
