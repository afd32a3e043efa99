package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/treemath"
)

// hexBytes decodes a JSON hex string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

func loadVectors(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "mls", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// vectorSuite returns the suite for a vector, or nil for the suites the
// project cannot run (X448/Ed448), which the caller counts as unsupported.
func vectorSuite(t *testing.T, id uint16) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if errors.Is(err, ciphersuite.ErrUnsupportedSuite) {
		return nil
	}
	if err != nil {
		t.Fatalf("suite %d: %v", id, err)
	}
	return s
}

func TestTreeValidationVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite uint16     `json:"cipher_suite"`
		Tree        hexBytes   `json:"tree"`
		GroupID     hexBytes   `json:"group_id"`
		Resolutions [][]uint32 `json:"resolutions"`
		TreeHashes  []hexBytes `json:"tree_hashes"`
	}
	loadVectors(t, "tree-validation.json", &vectors)
	passed, unsupported := 0, 0
	for i, v := range vectors {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			suite := vectorSuite(t, v.CipherSuite)
			if suite == nil {
				unsupported++
				return
			}
			tree, err := DecodeRatchetTree(suite, v.Tree)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tree.Marshal(), v.Tree) {
				t.Fatal("tree does not re-encode to the same bytes")
			}
			if len(v.TreeHashes) != int(tree.NumNodes()) || len(v.Resolutions) != int(tree.NumNodes()) {
				t.Fatalf("vector has %d hashes, %d resolutions; tree has %d nodes", len(v.TreeHashes), len(v.Resolutions), tree.NumNodes())
			}
			for x := uint32(0); x < tree.NumNodes(); x++ {
				if got := tree.Resolution(x); !slices.Equal(got, v.Resolutions[x]) && !(len(got) == 0 && len(v.Resolutions[x]) == 0) {
					t.Errorf("resolution(%d) = %v, want %v", x, got, v.Resolutions[x])
				}
				if got := tree.NodeTreeHash(x); !bytes.Equal(got, v.TreeHashes[x]) {
					t.Errorf("tree hash(%d) = %x, want %x", x, got, v.TreeHashes[x])
				}
			}
			if err := tree.VerifyParentHashes(); err != nil {
				t.Fatal(err)
			}
			for l := uint32(0); l < tree.NumLeaves(); l++ {
				if ln := tree.Leaf(l); ln != nil {
					if err := ln.VerifySignature(suite, v.GroupID, l); err != nil {
						t.Fatalf("leaf %d: %v", l, err)
					}
				}
			}
			if err := tree.Validate(&TreeValidation{GroupID: v.GroupID, TreeHash: v.TreeHashes[tree.Root()]}); err != nil {
				t.Fatal(err)
			}
			if !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("tree-validation.json: %d/%d passed, %d unsupported suite", passed, len(vectors), unsupported)
	if passed+unsupported != len(vectors) {
		t.Fail()
	}
}

func TestTreeOperationsVectors(t *testing.T) {
	var vectors []struct {
		CipherSuite    uint16   `json:"cipher_suite"`
		TreeBefore     hexBytes `json:"tree_before"`
		Proposal       hexBytes `json:"proposal"`
		ProposalSender uint32   `json:"proposal_sender"`
		TreeHashBefore hexBytes `json:"tree_hash_before"`
		TreeAfter      hexBytes `json:"tree_after"`
		TreeHashAfter  hexBytes `json:"tree_hash_after"`
	}
	loadVectors(t, "tree-operations.json", &vectors)
	for i, v := range vectors {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			suite := vectorSuite(t, v.CipherSuite)
			tree, err := DecodeRatchetTree(suite, v.TreeBefore)
			if err != nil {
				t.Fatal(err)
			}
			if got := tree.TreeHash(); !bytes.Equal(got, v.TreeHashBefore) {
				t.Fatalf("tree hash before = %x, want %x", got, v.TreeHashBefore)
			}
			before := tree.Clone()
			var p Proposal
			if err := p.Unmarshal(v.Proposal); err != nil {
				t.Fatal(err)
			}
			switch p.Type {
			case ProposalTypeAdd:
				_, err = tree.AddLeaf(&p.Add.KeyPackage.LeafNode)
			case ProposalTypeUpdate:
				err = tree.UpdateLeaf(v.ProposalSender, &p.Update.LeafNode)
			case ProposalTypeRemove:
				err = tree.RemoveLeaf(p.Remove.Removed)
			default:
				t.Fatalf("unexpected proposal type %d", p.Type)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tree.Marshal(); !bytes.Equal(got, v.TreeAfter) {
				t.Fatalf("tree after differs")
			}
			if got := tree.TreeHash(); !bytes.Equal(got, v.TreeHashAfter) {
				t.Fatalf("tree hash after = %x, want %x", got, v.TreeHashAfter)
			}
			// The cached hashes must agree with a fresh decode.
			fresh, err := DecodeRatchetTree(suite, v.TreeAfter)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fresh.TreeHash(), tree.TreeHash()) {
				t.Fatal("cached tree hash differs from a fresh computation")
			}
			// The clone taken before is untouched.
			if !bytes.Equal(before.Marshal(), v.TreeBefore) || !bytes.Equal(before.TreeHash(), v.TreeHashBefore) {
				t.Fatal("mutating the tree changed its clone")
			}
		})
	}
}

// TestTreeIndexMatchesTreemath cross-checks the private full-tree
// arithmetic against package treemath.
func TestTreeIndexMatchesTreemath(t *testing.T) {
	for leaves := uint32(1); leaves <= 64; leaves *= 2 {
		w := 2*leaves - 1
		root, _ := treemath.Root(leaves)
		if treeRoot(w) != uint32(root) {
			t.Fatalf("root(%d) = %d, want %d", leaves, treeRoot(w), root)
		}
		for x := uint32(0); x < w; x++ {
			if !isLeafNode(x) {
				l, _ := treemath.Left(treemath.NodeIndex(x))
				r, _ := treemath.Right(treemath.NodeIndex(x))
				if nodeLeft(x) != uint32(l) || nodeRight(x) != uint32(r) {
					t.Fatalf("children of %d", x)
				}
			}
			if x == treeRoot(w) {
				continue
			}
			p, _ := treemath.Parent(treemath.NodeIndex(x), leaves)
			s, _ := treemath.Sibling(treemath.NodeIndex(x), leaves)
			if nodeParent(x) != uint32(p) || nodeSibling(x) != uint32(s) {
				t.Fatalf("parent/sibling of %d in %d leaves", x, leaves)
			}
			for a := uint32(0); a < w; a++ {
				if isDescendant(x, a) != treemath.IsAncestor(treemath.NodeIndex(a), treemath.NodeIndex(x)) {
					t.Fatalf("isDescendant(%d, %d)", x, a)
				}
			}
		}
	}
}
