package mls

import (
	"testing"

	"github.com/parleychat/parley/mls/treemath"
)

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
