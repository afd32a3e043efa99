package mls

import "fmt"

// keyIndex answers the group-wide LeafNode checks of RFC 9420 §7.3 (unique
// encryption and signature keys, credential types supported by everyone)
// in constant time instead of a scan of the tree, so that a commit costs
// O(log n) however large the group.
//
// An index describes exactly one tree, the one in its tree field. It is
// updated in place as that tree is changed into its successor (the nodes
// that change are a few direct paths) and then describes the successor.
// Groups share an index; one whose tree is not the index's tree rebuilds
// it (O(n)), which happens only after a failed or discarded transaction or
// after loading a persisted state.
type keyIndex struct {
	tree     *RatchetTree
	encKeys  map[string]int // over all nodes
	sigKeys  map[string]int // over leaves
	credUse  map[CredentialType]int
	credSupp map[CredentialType]int
	members  int
}

// index returns a key index describing tree.
func (g *Group) index(tree *RatchetTree) *keyIndex {
	if g.keyIndex == nil || g.keyIndex.tree != tree {
		g.keyIndex = buildKeyIndex(tree)
	}
	return g.keyIndex
}

func buildKeyIndex(t *RatchetTree) *keyIndex {
	ix := &keyIndex{tree: t, encKeys: map[string]int{}, sigKeys: map[string]int{},
		credUse: map[CredentialType]int{}, credSupp: map[CredentialType]int{}}
	for x := uint32(0); x < t.NumNodes(); x++ {
		ix.add(t.Node(x), 1)
	}
	return ix
}

// add counts node n in (delta 1) or out (delta -1).
func (ix *keyIndex) add(n *Node, delta int) {
	if n == nil {
		return
	}
	bump(ix.encKeys, string(n.EncryptionKey()), delta)
	if ln := n.Leaf; ln != nil {
		ix.members += delta
		bump(ix.sigKeys, string(ln.SignatureKey), delta)
		bump(ix.credUse, ln.Credential.Type, delta)
		seen := map[CredentialType]bool{}
		for _, ct := range ln.Capabilities.Credentials {
			if !seen[ct] {
				seen[ct] = true
				bump(ix.credSupp, ct, delta)
			}
		}
	}
}

func bump[K comparable](m map[K]int, k K, delta int) {
	if v := m[k] + delta; v == 0 {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// change runs op, which may change leaf's node and the nodes on its direct
// path in ix.tree (and extend or truncate the tree), and updates the index
// to match.
func (ix *keyIndex) change(leaf uint32, op func() error) error {
	t := ix.tree
	path := append([]uint32{2 * leaf}, pathIfInside(t, leaf)...)
	before := make([]*Node, len(path))
	for i, x := range path {
		before[i] = t.Node(x)
	}
	err := op()
	// Re-read the same nodes; the direct path in a grown tree can reach
	// further up (new nodes there were blank before).
	after := append([]uint32{2 * leaf}, pathIfInside(t, leaf)...)
	for i, x := range path {
		if n := t.Node(x); n != before[i] {
			ix.add(before[i], -1)
			ix.add(n, 1)
		}
	}
	for _, x := range after[min(len(path), len(after)):] {
		ix.add(t.Node(x), 1)
	}
	return err
}

// pathIfInside is leaf's direct path, or nothing if the leaf is outside t.
func pathIfInside(t *RatchetTree, leaf uint32) []uint32 {
	if 2*leaf >= t.NumNodes() {
		return nil
	}
	return t.DirectPath(2 * leaf)
}

// checkLeaf is RatchetTree.CheckLeafInGroup for ix.tree: leaf is to occupy
// slot index (whose current occupant, if any, is being replaced).
func (ix *keyIndex) checkLeaf(leaf *LeafNode, index uint32) error {
	occ := ix.tree.Leaf(index)
	discount := func(match bool) int {
		if occ != nil && match {
			return 1
		}
		return 0
	}
	if ix.encKeys[string(leaf.EncryptionKey)]-discount(occ != nil && equalBytes(occ.EncryptionKey, leaf.EncryptionKey)) > 0 {
		return fmt.Errorf("%w: encryption key already in the tree", ErrInvalidLeafNode)
	}
	if ix.sigKeys[string(leaf.SignatureKey)]-discount(occ != nil && equalBytes(occ.SignatureKey, leaf.SignatureKey)) > 0 {
		return fmt.Errorf("%w: signature key already in the tree", ErrInvalidLeafNode)
	}
	others := ix.members - discount(true)
	supp := ix.credSupp[leaf.Credential.Type] - discount(occ != nil && occ.Capabilities.SupportsCredential(leaf.Credential.Type))
	if supp < others {
		return fmt.Errorf("%w: credential type %d not supported by every member", ErrInvalidLeafNode, leaf.Credential.Type)
	}
	for ct, n := range ix.credUse {
		if n-discount(occ != nil && occ.Credential.Type == ct) > 0 && !leaf.Capabilities.SupportsCredential(ct) {
			return fmt.Errorf("%w: credential type %d in use is not supported", ErrInvalidLeafNode, ct)
		}
	}
	return nil
}

// hasEncryptionKey reports whether some node of ix.tree uses key.
func (ix *keyIndex) hasEncryptionKey(key []byte) bool { return ix.encKeys[string(key)] > 0 }
