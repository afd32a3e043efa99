package mls

import (
	"slices"

	"github.com/parleychat/parley/mls/codec"
)

// TreeHash returns the tree hash of the root (RFC 9420 §7.8), the value in
// GroupContext.tree_hash. Only nodes changed since the last call are
// rehashed.
func (t *RatchetTree) TreeHash() []byte { return t.NodeTreeHash(t.Root()) }

// NodeTreeHash returns the tree hash of the subtree rooted at node x.
// The returned slice must not be modified.
func (t *RatchetTree) NodeTreeHash(x uint32) []byte {
	if h := t.hashes[x]; h != nil {
		return h
	}
	var h []byte
	if isLeafNode(x) {
		h = t.hashLeaf(x, t.nodes[x])
	} else {
		l := t.NodeTreeHash(nodeLeft(x))
		r := t.NodeTreeHash(nodeRight(x))
		h = t.hashParent(t.nodes[x], nil, l, r)
	}
	t.hashes[x] = h
	return h
}

// hashLeaf hashes TreeHashInput{leaf, LeafNodeHashInput}.
func (t *RatchetTree) hashLeaf(x uint32, n *Node) []byte {
	w := codec.NewWriter(make([]byte, 0, 512))
	w.U8(uint8(NodeTypeLeaf))
	w.U32(x / 2)
	w.Optional(n != nil, func(w *codec.Writer) { n.Leaf.Encode(w) })
	return t.suite.Hash(w.Bytes())
}

// hashParent hashes TreeHashInput{parent, ParentNodeHashInput}. If
// dropUnmerged (sorted) is non-empty, those leaves are left out of the
// node's unmerged_leaves (for original sibling tree hashes, §7.9).
func (t *RatchetTree) hashParent(n *Node, dropUnmerged []uint32, left, right []byte) []byte {
	w := codec.NewWriter(make([]byte, 0, 256))
	w.U8(uint8(NodeTypeParent))
	w.Optional(n != nil, func(w *codec.Writer) {
		p := n.Parent
		if len(dropUnmerged) > 0 {
			kept := make([]uint32, 0, len(p.UnmergedLeaves))
			for _, l := range p.UnmergedLeaves {
				if _, drop := slices.BinarySearch(dropUnmerged, l); !drop {
					kept = append(kept, l)
				}
			}
			p = &ParentNode{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash, UnmergedLeaves: kept}
		}
		p.Encode(w)
	})
	w.Opaque(left)
	w.Opaque(right)
	return t.suite.Hash(w.Bytes())
}

// treeHashWithout returns the tree hash of node x in the tree where the
// leaves in drop are blanked and removed from every unmerged_leaves list
// (the "original" tree hash of §7.9). Subtrees containing none of them use
// the cache.
func (t *RatchetTree) treeHashWithout(x uint32, drop []uint32) []byte {
	lo, hi := subtreeLeaves(x)
	var inside []uint32
	for _, l := range drop {
		if l >= lo && l < hi {
			inside = append(inside, l)
		}
	}
	if len(inside) == 0 {
		return t.NodeTreeHash(x)
	}
	if isLeafNode(x) {
		return t.hashLeaf(x, nil)
	}
	l := t.treeHashWithout(nodeLeft(x), inside)
	r := t.treeHashWithout(nodeRight(x), inside)
	return t.hashParent(t.nodes[x], inside, l, r)
}
