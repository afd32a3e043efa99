package treemath

import (
	"slices"
	"testing"
)

func TestPathsAgainstDefinitions(t *testing.T) {
	for _, n := range []uint32{1, 2, 4, 8, 16, 32} {
		w, _ := NodeWidth(n)
		root, _ := Root(n)
		ancestors := func(x NodeIndex) []NodeIndex {
			out := []NodeIndex{x}
			for {
				p, ok := Parent(x, n)
				if !ok {
					return out
				}
				out = append(out, p)
				x = p
			}
		}
		for x := NodeIndex(0); uint32(x) < w; x++ {
			dp, ok := DirectPath(x, n)
			if !ok || !slices.Equal(dp, ancestors(x)[1:]) {
				t.Fatalf("n=%d DirectPath(%d) = %v, %v", n, x, dp, ok)
			}
			if len(dp) > 0 && dp[len(dp)-1] != root {
				t.Fatalf("n=%d DirectPath(%d) does not end at the root", n, x)
			}
			cp, ok := Copath(x, n)
			if !ok || len(cp) != len(dp) {
				t.Fatalf("n=%d Copath(%d) = %v, %v", n, x, cp, ok)
			}
			for i, c := range cp {
				child := x
				if i > 0 {
					child = dp[i-1]
				}
				if s, _ := Sibling(child, n); s != c {
					t.Fatalf("n=%d Copath(%d)[%d] = %d, want sibling of %d", n, x, i, c, child)
				}
			}
			for y := NodeIndex(0); uint32(y) < w; y++ {
				ax, ay := ancestors(x), ancestors(y)
				var want NodeIndex
				for _, a := range ax {
					if slices.Contains(ay, a) {
						want = a
						break
					}
				}
				if got := CommonAncestor(x, y); got != want {
					t.Fatalf("CommonAncestor(%d, %d) = %d, want %d", x, y, got, want)
				}
				if IsAncestor(want, x) != true || IsAncestor(want, y) != true {
					t.Fatalf("IsAncestor(%d, ...) false for a common ancestor", want)
				}
			}
		}
	}
}

func TestOutOfRange(t *testing.T) {
	if _, ok := NodeWidth(1<<31 + 1); ok {
		t.Error("NodeWidth accepted 2^31+1 leaves")
	}
	if w, ok := NodeWidth(1 << 31); !ok || w != 1<<32-1 {
		t.Errorf("NodeWidth(2^31) = %d, %v", w, ok)
	}
	if _, ok := Root(0); ok {
		t.Error("empty tree has a root")
	}
	if _, ok := Parent(7, 4); ok {
		t.Error("node 7 is outside a 4-leaf tree but has a parent")
	}
	if _, ok := Parent(3, 4); ok {
		t.Error("root has a parent")
	}
	if _, ok := Sibling(3, 4); ok {
		t.Error("root has a sibling")
	}
	if _, ok := DirectPath(100, 4); ok {
		t.Error("DirectPath of a node outside the tree")
	}
	if _, ok := Copath(100, 4); ok {
		t.Error("Copath of a node outside the tree")
	}
	if p, ok := DirectPath(3, 4); !ok || len(p) != 0 {
		t.Errorf("DirectPath(root) = %v, %v", p, ok)
	}
	if _, ok := Right(0xffffffff); ok {
		t.Error("Right(2^32-1) should not exist")
	}
	if l, ok := Left(0x7fffffff); !ok || l != 0x3fffffff {
		t.Errorf("Left(2^31-1) = %d, %v", l, ok)
	}
	if r, ok := Right(0x7fffffff); !ok || r != 0xbfffffff {
		t.Errorf("Right(2^31-1) = %d, %v", r, ok)
	}
	// Every node of the largest tree has a path to its root.
	const big = 1 << 31
	for _, x := range []NodeIndex{0, 0xfffffffe, 0x7fffffff, 12345} {
		if p, ok := DirectPath(x, big); !ok || len(p) != int(31-Level(x)) {
			t.Errorf("DirectPath(%d, 2^31) = %d nodes, %v", x, len(p), ok)
		}
	}
	if LeafIndex(5).NodeIndex() != 10 {
		t.Error("leaf 5 is not node 10")
	}
	if l, ok := NodeIndex(10).LeafIndex(); !ok || l != 5 {
		t.Error("node 10 is not leaf 5")
	}
	if _, ok := NodeIndex(11).LeafIndex(); ok {
		t.Error("node 11 is a leaf")
	}
}
