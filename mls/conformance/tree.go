package conformance

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// runTreeOperations applies one Add, Update or Remove to a ratchet tree
// (§7.7, §12.1).
func runTreeOperations(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite    uint16   `json:"cipher_suite"`
		TreeBefore     hexBytes `json:"tree_before"`
		Proposal       hexBytes `json:"proposal"`
		ProposalSender uint32   `json:"proposal_sender"`
		TreeHashBefore hexBytes `json:"tree_hash_before"`
		TreeAfter      hexBytes `json:"tree_after"`
		TreeHashAfter  hexBytes `json:"tree_hash_after"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	tree, err := mls.DecodeRatchetTree(s, v.TreeBefore)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("tree_before: %w", err)
	}
	var c checker
	c.bytes("tree hash before", tree.TreeHash(), v.TreeHashBefore)
	// A clone taken now must not see the change.
	before := tree.Clone()
	var p mls.Proposal
	if err := p.Unmarshal(v.Proposal); err != nil {
		return v.CipherSuite, fmt.Errorf("proposal: %w", err)
	}
	switch p.Type {
	case mls.ProposalTypeAdd:
		_, err = tree.AddLeaf(&p.Add.KeyPackage.LeafNode)
	case mls.ProposalTypeUpdate:
		err = tree.UpdateLeaf(v.ProposalSender, &p.Update.LeafNode)
	case mls.ProposalTypeRemove:
		err = tree.RemoveLeaf(p.Remove.Removed)
	default:
		return v.CipherSuite, fmt.Errorf("unexpected proposal type %d", p.Type)
	}
	if err != nil {
		return v.CipherSuite, fmt.Errorf("apply proposal type %d: %w", p.Type, err)
	}
	if got := tree.Marshal(); !bytes.Equal(got, v.TreeAfter) {
		c.fail("tree after differs from tree_after")
	}
	c.bytes("tree hash after", tree.TreeHash(), v.TreeHashAfter)
	// The hashes cached while applying the proposal must agree with
	// those of a fresh decode of the result.
	fresh, err := mls.DecodeRatchetTree(s, v.TreeAfter)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("tree_after: %w", err)
	}
	c.bytes("tree hash of a fresh decode of tree_after", fresh.TreeHash(), v.TreeHashAfter)
	if !bytes.Equal(before.Marshal(), v.TreeBefore) {
		c.fail("applying the proposal changed a clone of the tree")
	}
	c.bytes("tree hash of the clone", before.TreeHash(), v.TreeHashBefore)
	return v.CipherSuite, c.err
}

// runTreeValidation checks resolutions, tree hashes, parent hashes and
// leaf signatures of a received tree (§4.1.1, §7.8, §7.9).
func runTreeValidation(entry json.RawMessage) (uint16, error) {
	var v struct {
		CipherSuite uint16     `json:"cipher_suite"`
		Tree        hexBytes   `json:"tree"`
		GroupID     hexBytes   `json:"group_id"`
		Resolutions [][]uint32 `json:"resolutions"`
		TreeHashes  []hexBytes `json:"tree_hashes"`
	}
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	tree, err := mls.DecodeRatchetTree(s, v.Tree)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("tree: %w", err)
	}
	if !bytes.Equal(tree.Marshal(), v.Tree) {
		return v.CipherSuite, fmt.Errorf("tree does not re-encode to the same bytes")
	}
	n := tree.NumNodes()
	if len(v.TreeHashes) != int(n) || len(v.Resolutions) != int(n) {
		return v.CipherSuite, fmt.Errorf("vector has %d hashes and %d resolutions for %d nodes", len(v.TreeHashes), len(v.Resolutions), n)
	}
	var c checker
	for x := range n {
		if got := tree.Resolution(x); !slices.Equal(got, v.Resolutions[x]) && len(got)+len(v.Resolutions[x]) > 0 {
			c.fail("resolution(%d) = %v, want %v", x, got, v.Resolutions[x])
		}
		c.bytes(fmt.Sprintf("tree hash(%d)", x), tree.NodeTreeHash(x), v.TreeHashes[x])
	}
	c.ok("parent hashes", tree.VerifyParentHashes())
	for l := range tree.NumLeaves() {
		if ln := tree.Leaf(l); ln != nil {
			c.ok(fmt.Sprintf("leaf %d signature", l), ln.VerifySignature(s, v.GroupID, l))
		}
	}
	c.ok("tree validation", tree.Validate(&mls.TreeValidation{GroupID: v.GroupID, TreeHash: v.TreeHashes[tree.Root()]}))
	return v.CipherSuite, c.err
}

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

func (v *treeKEMVector) groupContext(treeHash []byte) []byte {
	return encodeGroupContext(v.CipherSuite, v.GroupID, v.Epoch, treeHash, v.ConfirmedTranscriptHash)
}

// nodeKey derives a node's HPKE key pair from its path secret (§7.4).
func nodeKey(s *ciphersuite.Suite, pathSecret []byte) (priv, pub []byte, err error) {
	return s.DeriveKeyPair(s.DeriveSecret(pathSecret, "node"))
}

// runTreeKEM checks UpdatePath merging and decryption by every member, and
// that a freshly generated UpdatePath from each sender round-trips (§7.4-7.6).
func runTreeKEM(entry json.RawMessage) (uint16, error) {
	var v treeKEMVector
	if err := decode(entry, &v); err != nil {
		return 0, err
	}
	s, err := suite(v.CipherSuite)
	if err != nil {
		return v.CipherSuite, err
	}
	tree, err := mls.DecodeRatchetTree(s, v.RatchetTree)
	if err != nil {
		return v.CipherSuite, fmt.Errorf("ratchet_tree: %w", err)
	}
	if err := tree.VerifyParentHashes(); err != nil {
		return v.CipherSuite, err
	}
	keys := map[uint32]*mls.TreeKeys{}
	signers := map[uint32]ciphersuite.Signer{}
	for _, lp := range v.LeavesPrivate {
		k := mls.NewTreeKeys(lp.Index, lp.EncryptionPriv)
		for _, ps := range lp.PathSecrets {
			priv, pub, err := nodeKey(s, ps.PathSecret)
			if err != nil {
				return v.CipherSuite, fmt.Errorf("leaf %d: node %d key: %w", lp.Index, ps.Node, err)
			}
			if n := tree.Node(ps.Node); n == nil || !bytes.Equal(n.EncryptionKey(), pub) {
				return v.CipherSuite, fmt.Errorf("leaf %d: path secret for node %d does not match the tree", lp.Index, ps.Node)
			}
			k.SetPrivateKey(ps.Node, priv)
		}
		// The private state survives being stored and loaded: the rest
		// of the entry uses the loaded copy.
		stored := new(mls.TreeKeys)
		if err := stored.Unmarshal(k.Marshal()); err != nil {
			return v.CipherSuite, fmt.Errorf("leaf %d: TreeKeys round trip: %w", lp.Index, err)
		}
		if !bytes.Equal(stored.Marshal(), k.Marshal()) {
			return v.CipherSuite, fmt.Errorf("leaf %d: TreeKeys re-encode to different bytes", lp.Index)
		}
		keys[lp.Index] = stored
		signer, err := s.NewSigner(lp.SignaturePriv)
		if err != nil {
			return v.CipherSuite, fmt.Errorf("leaf %d: signature_priv: %w", lp.Index, err)
		}
		signers[lp.Index] = signer
	}

	for _, up := range v.UpdatePaths {
		var path mls.UpdatePath
		if err := path.Unmarshal(up.UpdatePath); err != nil {
			return v.CipherSuite, fmt.Errorf("sender %d: update_path: %w", up.Sender, err)
		}
		merged := tree.Clone()
		if err := merged.MergeUpdatePath(up.Sender, &path, v.GroupID); err != nil {
			return v.CipherSuite, fmt.Errorf("sender %d: merge: %w", up.Sender, err)
		}
		if got := merged.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) {
			return v.CipherSuite, fmt.Errorf("sender %d: tree hash after = %x, want %x", up.Sender, got, []byte(up.TreeHashAfter))
		}
		if err := merged.VerifyParentHashes(); err != nil {
			return v.CipherSuite, fmt.Errorf("sender %d: %w", up.Sender, err)
		}
		gc := v.groupContext(up.TreeHashAfter)
		for leaf, k := range keys {
			if leaf == up.Sender {
				continue
			}
			cs, nk, err := merged.DecryptUpdatePath(k, up.Sender, &path, gc, nil)
			if err != nil {
				return v.CipherSuite, fmt.Errorf("sender %d, receiver %d: %w", up.Sender, leaf, err)
			}
			if !bytes.Equal(cs, up.CommitSecret) {
				return v.CipherSuite, fmt.Errorf("sender %d, receiver %d: commit secret differs", up.Sender, leaf)
			}
			if int(leaf) < len(up.PathSecrets) && up.PathSecrets[leaf] != nil {
				// The receiver must now hold the key of the path secret
				// it was sent, at the lowest common ancestor.
				priv, _, err := nodeKey(s, up.PathSecrets[leaf])
				if err != nil {
					return v.CipherSuite, err
				}
				found := false
				for _, x := range nk.Nodes() {
					if p, _ := nk.PrivateKey(x); bytes.Equal(p, priv) {
						found = true
					}
				}
				if !found {
					return v.CipherSuite, fmt.Errorf("sender %d, receiver %d: path secret's key not installed", up.Sender, leaf)
				}
			}
		}
		if signer, ok := signers[up.Sender]; ok {
			if err := freshPathRoundTrip(tree, up.Sender, signer, keys, &v); err != nil {
				return v.CipherSuite, err
			}
		}
	}
	return v.CipherSuite, nil
}

func freshPathRoundTrip(tree *mls.RatchetTree, sender uint32, signer ciphersuite.Signer, keys map[uint32]*mls.TreeKeys, v *treeKEMVector) error {
	committed := tree.Clone()
	gen, err := committed.GenerateUpdatePath(rand.Reader, sender, tree.Leaf(sender), signer, v.GroupID)
	if err != nil {
		return fmt.Errorf("fresh path from %d: %w", sender, err)
	}
	if err := committed.VerifyParentHashes(); err != nil {
		return fmt.Errorf("fresh path from %d: %w", sender, err)
	}
	gc := v.groupContext(committed.TreeHash())
	path, err := gen.Encrypt(committed, gc, nil)
	if err != nil {
		return fmt.Errorf("fresh path from %d: encrypt: %w", sender, err)
	}
	var decoded mls.UpdatePath
	if err := decoded.Unmarshal(path.Marshal()); err != nil {
		return fmt.Errorf("fresh path from %d: decode: %w", sender, err)
	}
	for leaf, k := range keys {
		if leaf == sender {
			continue
		}
		merged := tree.Clone()
		if err := merged.MergeUpdatePath(sender, &decoded, v.GroupID); err != nil {
			return fmt.Errorf("fresh path from %d: merge at %d: %w", sender, leaf, err)
		}
		if !bytes.Equal(merged.TreeHash(), committed.TreeHash()) {
			return fmt.Errorf("fresh path from %d: receiver %d's tree hash differs", sender, leaf)
		}
		cs, _, err := merged.DecryptUpdatePath(k, sender, &decoded, gc, nil)
		if err != nil {
			return fmt.Errorf("fresh path from %d: receiver %d: %w", sender, leaf, err)
		}
		if !bytes.Equal(cs, gen.CommitSecret) {
			return fmt.Errorf("fresh path from %d: receiver %d: commit secret differs", sender, leaf)
		}
	}
	return nil
}
