package mls

import "math/bits"

// Array-based tree arithmetic (RFC 9420 Appendix C) for the full trees MLS
// uses: the number of leaves is always a power of two, node 2i is leaf i,
// and parents sit between their subtrees.

// nodeLevel is the number of trailing one bits: 0 for leaves.
func nodeLevel(x uint32) uint { return uint(bits.TrailingZeros32(^x)) }

func isLeafNode(x uint32) bool { return x&1 == 0 }

// treeRoot is the root of a full tree with nodeCount = 2^(d+1)-1 nodes.
func treeRoot(nodeCount uint32) uint32 { return nodeCount / 2 }

func nodeLeft(x uint32) uint32 {
	k := nodeLevel(x)
	return x ^ (1 << (k - 1))
}

func nodeRight(x uint32) uint32 {
	k := nodeLevel(x)
	return x ^ (3 << (k - 1))
}

// nodeParent is the parent of a non-root node.
func nodeParent(x uint32) uint32 {
	k := nodeLevel(x)
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

// nodeSibling is the other child of x's parent.
func nodeSibling(x uint32) uint32 {
	p := nodeParent(x)
	if x < p {
		return nodeRight(p)
	}
	return nodeLeft(p)
}

// subtreeLeaves returns the range [lo, hi) of leaf indices under node x.
func subtreeLeaves(x uint32) (lo, hi uint32) {
	k := nodeLevel(x)
	first := x - (1<<k - 1) // leftmost descendant node (a leaf)
	return first / 2, first/2 + 1<<k
}

// isDescendant reports whether node d is in the subtree rooted at a
// (including a itself).
func isDescendant(d, a uint32) bool {
	k := nodeLevel(a)
	return d >= a-(1<<k-1) && d <= a+(1<<k-1)
}
