// Package treemath is the index arithmetic of MLS's array-based ratchet
// tree (RFC 9420 §4.1 and Appendix C).
//
// MLS trees are perfect binary trees: n leaves, n a power of two, stored
// as 2n-1 nodes with leaf i at node 2i and parents at odd indices. Every
// function here that depends on the tree's size takes the number of leaves
// and reports ok=false, rather than panicking, for a node outside the tree
// or a relation that does not exist (the parent of the root, the children
// of a leaf).
package treemath

import "math/bits"

// NodeIndex is a node's position in the array representation.
type NodeIndex uint32

// LeafIndex is a leaf's position among the leaves (leaf i is node 2i).
type LeafIndex uint32

// NodeIndex returns the node holding leaf l.
func (l LeafIndex) NodeIndex() NodeIndex { return NodeIndex(uint64(l) * 2) }

// LeafIndex returns the leaf held by node x, or ok=false if x is a parent
// node.
func (x NodeIndex) LeafIndex() (LeafIndex, bool) {
	if !IsLeaf(x) {
		return 0, false
	}
	return LeafIndex(x / 2), true
}

// IsLeaf reports whether x is a leaf node (even index).
func IsLeaf(x NodeIndex) bool { return x&1 == 0 }

// Level is the height of x above the leaves: 0 for leaves, the number of
// trailing one bits for parents.
func Level(x NodeIndex) uint32 { return uint32(bits.TrailingZeros32(^uint32(x))) }

// NodeWidth is the number of nodes in a tree with nLeaves leaves: 2n-1, or
// 0 for an empty tree. It is at most 2^32-1, for nLeaves = 2^31; larger
// leaf counts report ok=false.
func NodeWidth(nLeaves uint32) (width uint32, ok bool) {
	if nLeaves == 0 {
		return 0, true
	}
	if nLeaves > 1<<31 {
		return 0, false
	}
	return 2*(nLeaves-1) + 1, true
}

// Root is the root node of a tree with nLeaves leaves (ok=false for an
// empty tree or one too large to index).
func Root(nLeaves uint32) (NodeIndex, bool) {
	w, ok := NodeWidth(nLeaves)
	if !ok || w == 0 {
		return 0, false
	}
	return NodeIndex(uint32(1)<<(bits.Len32(w)-1) - 1), true
}

// Left is the left child of parent node x (ok=false for a leaf).
func Left(x NodeIndex) (NodeIndex, bool) {
	k := Level(x)
	if k == 0 || k > 31 {
		return 0, false
	}
	return x ^ NodeIndex(1)<<(k-1), true
}

// Right is the right child of parent node x (ok=false for a leaf, or for a
// node so high its right child would not fit in 32 bits).
func Right(x NodeIndex) (NodeIndex, bool) {
	k := Level(x)
	if k == 0 || k > 31 {
		return 0, false
	}
	r := uint64(x) ^ uint64(3)<<(k-1)
	if r > 0xffffffff {
		return 0, false
	}
	return NodeIndex(r), true
}

// inTree reports whether x is a node of a tree with nLeaves leaves.
func inTree(x NodeIndex, nLeaves uint32) bool {
	w, ok := NodeWidth(nLeaves)
	return ok && uint32(x) < w
}

// Parent is the parent of x in a tree with nLeaves leaves (ok=false for the
// root or for a node outside the tree).
func Parent(x NodeIndex, nLeaves uint32) (NodeIndex, bool) {
	r, ok := Root(nLeaves)
	if !ok || x == r || !inTree(x, nLeaves) {
		return 0, false
	}
	k := Level(x)
	b := (uint64(x) >> (k + 1)) & 1
	p := (uint64(x) | 1<<k) ^ b<<(k+1)
	if !inTree(NodeIndex(p), nLeaves) || p > 0xffffffff {
		return 0, false
	}
	return NodeIndex(p), true
}

// Sibling is the other child of x's parent (ok=false for the root or a node
// outside the tree).
func Sibling(x NodeIndex, nLeaves uint32) (NodeIndex, bool) {
	p, ok := Parent(x, nLeaves)
	if !ok {
		return 0, false
	}
	var s NodeIndex
	if x < p {
		s, ok = Right(p)
	} else {
		s, ok = Left(p)
	}
	if !ok || !inTree(s, nLeaves) {
		return 0, false
	}
	return s, true
}

// DirectPath is the list of x's ancestors, from its parent up to the root
// (empty for the root itself). ok=false if x is outside the tree.
func DirectPath(x NodeIndex, nLeaves uint32) ([]NodeIndex, bool) {
	if !inTree(x, nLeaves) {
		return nil, false
	}
	r, _ := Root(nLeaves)
	path := make([]NodeIndex, 0, Level(r)-min(Level(x), Level(r)))
	for x != r {
		p, ok := Parent(x, nLeaves)
		if !ok {
			return nil, false
		}
		path = append(path, p)
		x = p
	}
	return path, true
}

// Copath is the list of siblings of x and of each node of its direct path
// except the root, ordered from x upwards (§4.1.2). ok=false if x is
// outside the tree.
func Copath(x NodeIndex, nLeaves uint32) ([]NodeIndex, bool) {
	path, ok := DirectPath(x, nLeaves)
	if !ok {
		return nil, false
	}
	copath := make([]NodeIndex, 0, len(path))
	for _, y := range append([]NodeIndex{x}, path...)[:len(path)] {
		s, ok := Sibling(y, nLeaves)
		if !ok {
			return nil, false
		}
		copath = append(copath, s)
	}
	return copath, true
}

// CommonAncestor is the lowest node that is x or an ancestor of x and also
// y or an ancestor of y. It needs no tree size: in a perfect tree large
// enough to hold both nodes the answer is the same.
func CommonAncestor(x, y NodeIndex) NodeIndex {
	lx, ly := Level(x)+1, Level(y)+1
	if lx <= ly && uint64(x)>>ly == uint64(y)>>ly {
		return y
	}
	if ly <= lx && uint64(x)>>lx == uint64(y)>>lx {
		return x
	}
	xn, yn, k := uint64(x), uint64(y), 0
	for xn != yn {
		xn, yn = xn>>1, yn>>1
		k++
	}
	return NodeIndex(xn<<k + 1<<(k-1) - 1)
}

// IsAncestor reports whether a is x itself or one of its ancestors.
func IsAncestor(a, x NodeIndex) bool { return CommonAncestor(a, x) == a }
