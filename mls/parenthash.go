package mls

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls/codec"
)

// parentHash hashes ParentHashInput (RFC 9420 §7.9).
func (t *RatchetTree) parentHash(encryptionKey, parentHash, siblingHash []byte) []byte {
	w := codec.NewWriter(make([]byte, 0, 160))
	w.Opaque(encryptionKey)
	w.Opaque(parentHash)
	w.Opaque(siblingHash)
	return t.suite.Hash(w.Bytes())
}

// setPathParentHashes fills in the parent_hash fields along the filtered
// direct path fdp of leaf, whose parent nodes were just replaced by an
// UpdatePath (and so have no unmerged leaves), top down, and returns the
// parent hash the leaf's LeafNode must carry (§7.9). The parent nodes in
// the tree are replaced by copies with ParentHash set.
func (t *RatchetTree) setPathParentHashes(leaf uint32, fdp []uint32) []byte {
	var above []byte // parent_hash field of the node being processed
	for j := len(fdp) - 1; j >= 0; j-- {
		p := fdp[j]
		np := *t.nodes[p].Parent
		np.ParentHash = above
		if np.ParentHash == nil {
			np.ParentHash = []byte{}
		}
		pn := &np
		t.setNode(p, &Node{Parent: pn})
		// S is the child of p not on the path to the leaf.
		s := nodeRight(p)
		if 2*leaf > p {
			s = nodeLeft(p)
		}
		above = t.parentHash(pn.EncryptionKey, pn.ParentHash, t.NodeTreeHash(s))
	}
	if above == nil {
		above = []byte{}
	}
	return above
}

// nodeParentHash returns the parent_hash field of node x: a commit-sourced
// leaf's or a parent's. ok is false for blank nodes and other leaves.
func (t *RatchetTree) nodeParentHash(x uint32) (ph []byte, ok bool) {
	n := t.nodes[x]
	switch {
	case n == nil:
		return nil, false
	case n.Leaf != nil:
		return n.Leaf.ParentHash, n.Leaf.Source == LeafNodeSourceCommit
	default:
		return n.Parent.ParentHash, true
	}
}

// VerifyParentHashes checks that every non-blank parent node is
// parent-hash valid (§7.9.2), "top down": for each parent P there must be
// exactly one node D below it whose parent_hash is P's parent hash with the
// other child as copath child, such that D is in the resolution of its
// child C of P and the rest of that resolution is exactly P's unmerged
// leaves under C.
func (t *RatchetTree) VerifyParentHashes() error {
	for p := uint32(1); p < uint32(len(t.nodes)); p += 2 {
		pn := t.ParentNode(p)
		if pn == nil {
			continue
		}
		// Resolutions below rely on unmerged_leaves being well formed.
		if err := t.checkUnmerged(p, pn); err != nil {
			return err
		}
		matches := 0
		for _, c := range [2]uint32{nodeLeft(p), nodeRight(p)} {
			s := nodeSibling(c)
			want := t.parentHash(pn.EncryptionKey, pn.ParentHash, t.treeHashWithout(s, pn.UnmergedLeaves))
			res := t.Resolution(c)
			for _, d := range res {
				ph, ok := t.nodeParentHash(d)
				if !ok || !bytes.Equal(ph, want) {
					continue
				}
				if t.restIsUnmerged(res, d, c, pn.UnmergedLeaves) {
					matches++
				}
			}
		}
		if matches != 1 {
			return fmt.Errorf("%w: parent node %d is not parent-hash valid (%d chains)", ErrInvalidTree, p, matches)
		}
	}
	return nil
}

// restIsUnmerged reports whether res minus d equals the leaves of unmerged
// under node c (as node indices).
func (t *RatchetTree) restIsUnmerged(res []uint32, d, c uint32, unmerged []uint32) bool {
	lo, hi := subtreeLeaves(c)
	var want []uint32
	for _, l := range unmerged {
		if l >= lo && l < hi {
			want = append(want, 2*l)
		}
	}
	var got []uint32
	for _, x := range res {
		if x != d {
			got = append(got, x)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	return slices.Equal(want, got)
}
