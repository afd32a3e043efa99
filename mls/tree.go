package mls

import (
	"errors"
	"fmt"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// ErrInvalidTree is wrapped by ratchet tree validation failures.
var ErrInvalidTree = errors.New("mls: invalid ratchet tree")

// maxTreeLeaves bounds the trees we accept (2^30 leaves would not even fit
// the varint length of the ratchet_tree extension).
const maxTreeLeaves = 1 << 24

// RatchetTree is the public ratchet tree of a group (RFC 9420 §4, §7) in
// array form: node 2i is leaf i, odd indices are parent nodes, and a nil
// entry is blank. The number of leaves is always a power of two (§7.7).
//
// Nodes are immutable once in the tree; every mutation replaces a *Node.
// Clone therefore copies only two pointer slices, which makes
// copy-on-write transactions cheap: clone, apply a commit to the clone,
// and keep it only if everything validates.
//
// Tree hashes are cached per node and invalidated only along the direct
// path of a changed node, so a commit costs O(log n) hashes.
//
// A RatchetTree is not safe for concurrent mutation; concurrent reads of
// trees whose hashes are all computed (TreeHash called) are safe.
type RatchetTree struct {
	suite  *ciphersuite.Suite
	nodes  []*Node
	hashes [][]byte // tree hash cache; nil entries are stale
}

// NewRatchetTree returns a one-leaf tree holding leaf (the group creator).
func NewRatchetTree(suite *ciphersuite.Suite, leaf *LeafNode) *RatchetTree {
	return &RatchetTree{
		suite:  suite,
		nodes:  []*Node{{Leaf: leaf}},
		hashes: make([][]byte, 1),
	}
}

// Suite returns the tree's cipher suite.
func (t *RatchetTree) Suite() *ciphersuite.Suite { return t.suite }

// Clone returns an independent copy sharing the (immutable) nodes.
func (t *RatchetTree) Clone() *RatchetTree {
	return &RatchetTree{suite: t.suite, nodes: slices.Clone(t.nodes), hashes: slices.Clone(t.hashes)}
}

// NumLeaves is the number of leaf slots (blank or not), a power of two.
func (t *RatchetTree) NumLeaves() uint32 { return uint32(len(t.nodes)+1) / 2 }

// NumNodes is the number of node slots, 2*NumLeaves()-1.
func (t *RatchetTree) NumNodes() uint32 { return uint32(len(t.nodes)) }

// Root is the root's node index.
func (t *RatchetTree) Root() uint32 { return treeRoot(uint32(len(t.nodes))) }

// Node returns the node at node index x, or nil if blank or out of range.
func (t *RatchetTree) Node(x uint32) *Node {
	if x >= uint32(len(t.nodes)) {
		return nil
	}
	return t.nodes[x]
}

// Leaf returns the LeafNode at leaf index i, or nil if blank or out of range.
func (t *RatchetTree) Leaf(i uint32) *LeafNode {
	if n := t.Node(2 * i); n != nil {
		return n.Leaf
	}
	return nil
}

// ParentNode returns the ParentNode at node index x, or nil.
func (t *RatchetTree) ParentNode(x uint32) *ParentNode {
	if n := t.Node(x); n != nil {
		return n.Parent
	}
	return nil
}

// setNode replaces node x and invalidates the cached hashes above it.
func (t *RatchetTree) setNode(x uint32, n *Node) {
	t.nodes[x] = n
	t.invalidate(x)
}

func (t *RatchetTree) invalidate(x uint32) {
	root := t.Root()
	for {
		t.hashes[x] = nil
		if x == root {
			return
		}
		x = nodeParent(x)
	}
}

// DirectPath returns the node indices from x's parent up to the root.
func (t *RatchetTree) DirectPath(x uint32) []uint32 {
	root := t.Root()
	var path []uint32
	for x != root {
		x = nodeParent(x)
		path = append(path, x)
	}
	return path
}

// Copath returns the siblings of x and of each node of its direct path
// except the root, bottom up.
func (t *RatchetTree) Copath(x uint32) []uint32 {
	root := t.Root()
	var cp []uint32
	for x != root {
		cp = append(cp, nodeSibling(x))
		x = nodeParent(x)
	}
	return cp
}

// Resolution returns the resolution of node x (§4.1.1) as node indices,
// left to right: the node itself plus its unmerged leaves if it is a
// non-blank parent, the node if it is a non-blank leaf, and otherwise the
// concatenated resolutions of its children.
func (t *RatchetTree) Resolution(x uint32) []uint32 {
	return t.appendResolution(nil, x, nil)
}

// appendResolution appends x's resolution to res, leaving out the leaves in
// exclude (leaf indices; used for new members of a commit, §12.4.2).
func (t *RatchetTree) appendResolution(res []uint32, x uint32, exclude []uint32) []uint32 {
	n := t.nodes[x]
	switch {
	case n != nil && n.Leaf != nil:
		if !slices.Contains(exclude, x/2) {
			res = append(res, x)
		}
	case n != nil:
		res = append(res, x)
		for _, l := range n.Parent.UnmergedLeaves {
			if !slices.Contains(exclude, l) {
				res = append(res, 2*l)
			}
		}
	case !isLeafNode(x):
		res = t.appendResolution(res, nodeLeft(x), exclude)
		res = t.appendResolution(res, nodeRight(x), exclude)
	}
	return res
}

// resolutionEmpty reports whether x's resolution is empty, i.e. the subtree
// under x is entirely blank.
func (t *RatchetTree) resolutionEmpty(x uint32) bool {
	if t.nodes[x] != nil {
		return false
	}
	if isLeafNode(x) {
		return true
	}
	return t.resolutionEmpty(nodeLeft(x)) && t.resolutionEmpty(nodeRight(x))
}

// FilteredDirectPath returns the filtered direct path of leaf (§4.1.2): the
// direct path without the nodes whose child on the copath has an empty
// resolution.
func (t *RatchetTree) FilteredDirectPath(leaf uint32) []uint32 {
	x := 2 * leaf
	root := t.Root()
	var path []uint32
	for x != root {
		p := nodeParent(x)
		if !t.resolutionEmpty(nodeSibling(x)) {
			path = append(path, p)
		}
		x = p
	}
	return path
}

// MemberCount is the number of non-blank leaves.
func (t *RatchetTree) MemberCount() int {
	n := 0
	for i := 0; i < len(t.nodes); i += 2 {
		if t.nodes[i] != nil {
			n++
		}
	}
	return n
}

// FindLeaf returns the index of the first non-blank leaf for which match
// returns true.
func (t *RatchetTree) FindLeaf(match func(index uint32, leaf *LeafNode) bool) (uint32, bool) {
	for i := 0; i < len(t.nodes); i += 2 {
		if n := t.nodes[i]; n != nil && match(uint32(i/2), n.Leaf) {
			return uint32(i / 2), true
		}
	}
	return 0, false
}

// extend doubles the number of leaves with a blank right half (§7.7).
func (t *RatchetTree) extend() {
	n := len(t.nodes)
	t.nodes = append(t.nodes, make([]*Node, n+1)...)
	t.hashes = append(t.hashes, make([][]byte, n+1)...)
}

// truncate halves the tree while its right half has only blank leaves
// (§12.1.3), keeping at least one leaf.
func (t *RatchetTree) truncate() {
	last := len(t.nodes) - 1
	for last > 0 && t.nodes[last] == nil {
		last -= 2
	}
	// Keep the smallest full tree whose leaves include leaf last/2.
	leaves := 1
	for leaves <= last/2 {
		leaves *= 2
	}
	if w := 2*leaves - 1; w < len(t.nodes) {
		clear(t.nodes[w:])
		t.nodes = t.nodes[:w:w]
		t.hashes = t.hashes[:w:w]
		// The new root's hash is still valid: its subtree is unchanged.
	}
}

// AddLeaf puts leaf in the leftmost blank leaf slot, extending the tree if
// there is none, and records it as unmerged in every non-blank parent above
// it (§12.1.1). It returns the new leaf's index.
func (t *RatchetTree) AddLeaf(leaf *LeafNode) (uint32, error) {
	x := uint32(0)
	for ; x < uint32(len(t.nodes)); x += 2 {
		if t.nodes[x] == nil {
			break
		}
	}
	if x >= uint32(len(t.nodes)) {
		if t.NumLeaves() >= maxTreeLeaves {
			return 0, fmt.Errorf("add leaf: tree full")
		}
		t.extend()
	}
	index := x / 2
	t.setNode(x, &Node{Leaf: leaf})
	for _, p := range t.DirectPath(x) {
		if pn := t.nodes[p]; pn != nil {
			np := *pn.Parent
			i, found := slices.BinarySearch(np.UnmergedLeaves, index)
			if found {
				continue
			}
			// Clip so that Insert copies: the old node is shared.
			np.UnmergedLeaves = slices.Insert(slices.Clip(np.UnmergedLeaves), i, index)
			t.setNode(p, &Node{Parent: &np})
		}
	}
	return index, nil
}

// blankDirectPath blanks every parent above node x.
func (t *RatchetTree) blankDirectPath(x uint32) {
	for _, p := range t.DirectPath(x) {
		if t.nodes[p] != nil {
			t.setNode(p, nil)
		}
	}
}

// UpdateLeaf replaces leaf i (which must be non-blank) and blanks its direct
// path, as for an Update proposal (§12.1.2).
func (t *RatchetTree) UpdateLeaf(i uint32, leaf *LeafNode) error {
	if t.Leaf(i) == nil {
		return fmt.Errorf("update leaf %d: %w: blank or out of range", i, ErrInvalidTree)
	}
	t.setNode(2*i, &Node{Leaf: leaf})
	t.blankDirectPath(2 * i)
	return nil
}

// RemoveLeaf blanks leaf i (which must be non-blank) and its direct path,
// then truncates trailing blank halves (§12.1.3).
func (t *RatchetTree) RemoveLeaf(i uint32) error {
	if t.Leaf(i) == nil {
		return fmt.Errorf("remove leaf %d: %w: blank or out of range", i, ErrInvalidTree)
	}
	t.setNode(2*i, nil)
	t.blankDirectPath(2 * i)
	t.truncate()
	return nil
}

// Encode writes the tree as the ratchet_tree extension's
// optional<Node> ratchet_tree<V>, without trailing blanks (§12.4.3.3).
func (t *RatchetTree) Encode(w *codec.Writer) {
	last := len(t.nodes) - 1
	for last > 0 && t.nodes[last] == nil {
		last--
	}
	w.Vector(func(w *codec.Writer) {
		for _, n := range t.nodes[:last+1] {
			if n == nil {
				w.U8(0)
				continue
			}
			w.U8(1)
			n.Encode(w)
		}
	})
}

// Marshal returns the ratchet_tree encoding.
func (t *RatchetTree) Marshal() []byte {
	// Leaves dominate: about 200 bytes each with Ed25519 and short
	// credentials. Sizing up front avoids regrowing a multi-megabyte buffer.
	w := codec.NewWriter(make([]byte, 0, 96*len(t.nodes)+64))
	t.Encode(w)
	return w.Bytes()
}

// Extension returns the tree as a ratchet_tree extension.
func (t *RatchetTree) Extension() Extension {
	return Extension{Type: ExtensionRatchetTree, Data: t.Marshal()}
}

// DecodeRatchetTree parses a ratchet_tree extension body. It checks the
// syntax and the shape (leaves at even positions hold LeafNodes, parents at
// odd positions hold ParentNodes, last node non-blank) but not the
// cryptographic integrity; call Validate for that before trusting it.
func DecodeRatchetTree(suite *ciphersuite.Suite, data []byte) (*RatchetTree, error) {
	r := codec.NewReader(data)
	t, err := decodeRatchetTree(suite, r)
	if err == nil {
		err = r.Finish()
	}
	if err != nil {
		return nil, malformed("ratchet tree", err)
	}
	return t, nil
}

func decodeRatchetTree(suite *ciphersuite.Suite, r *codec.Reader) (*RatchetTree, error) {
	var nodes []*Node
	r.ReadVector(func(r *codec.Reader) {
		if len(nodes) >= 2*maxTreeLeaves {
			invalid(r, "tree too large")
			return
		}
		var n *Node
		if r.Optional() {
			n = new(Node)
			n.Decode(r)
			if r.Err() == nil && (n.Leaf != nil) != isLeafNode(uint32(len(nodes))) {
				invalid(r, "node %d has the wrong type", len(nodes))
			}
		}
		nodes = append(nodes, n)
	})
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: empty tree", codec.ErrInvalidValue)
	}
	if nodes[len(nodes)-1] == nil {
		return nil, fmt.Errorf("%w: trailing blank node", codec.ErrInvalidValue)
	}
	// Pad with blanks to the next full tree, 2^(d+1)-1 nodes.
	w := 1
	for w < len(nodes) {
		w = 2*w + 1
	}
	nodes = append(nodes, make([]*Node, w-len(nodes))...)
	return &RatchetTree{suite: suite, nodes: nodes, hashes: make([][]byte, w)}, nil
}
