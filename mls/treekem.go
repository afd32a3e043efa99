package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/codec"
)

// ErrInvalidUpdatePath is wrapped by failures to merge or decrypt an
// UpdatePath.
var ErrInvalidUpdatePath = errors.New("mls: invalid update path")

// TreeKeys is a member's private view of the ratchet tree: the HPKE private
// keys it holds, by node index (its own leaf and parents on its direct
// path). Methods that change keys return a new TreeKeys, so an old one
// stays valid until the caller commits to the new epoch.
type TreeKeys struct {
	LeafIndex uint32
	keys      map[uint32][]byte
}

// NewTreeKeys returns the keys of a member at leaf holding leafPriv, the
// private key of its LeafNode's encryption_key.
func NewTreeKeys(leaf uint32, leafPriv []byte) *TreeKeys {
	return &TreeKeys{LeafIndex: leaf, keys: map[uint32][]byte{2 * leaf: leafPriv}}
}

// Clone returns an independent copy.
func (k *TreeKeys) Clone() *TreeKeys {
	return &TreeKeys{LeafIndex: k.LeafIndex, keys: maps.Clone(k.keys)}
}

// PrivateKey returns the private key held for node x.
func (k *TreeKeys) PrivateKey(x uint32) ([]byte, bool) {
	p, ok := k.keys[x]
	return p, ok
}

// SetPrivateKey records the private key for node x.
func (k *TreeKeys) SetPrivateKey(x uint32, priv []byte) { k.keys[x] = priv }

// Nodes lists the node indices keys are held for, in increasing order.
func (k *TreeKeys) Nodes() []uint32 { return slices.Sorted(maps.Keys(k.keys)) }

// Prune drops keys for nodes that are blank or outside t, and for nodes
// that are not on the member's own leaf or direct path.
func (k *TreeKeys) Prune(t *RatchetTree) {
	for x := range k.keys {
		if t.Node(x) == nil || !isDescendant(2*k.LeafIndex, x) {
			delete(k.keys, x)
		}
	}
}

// Encode writes struct { uint32 leaf_index; NodeKey keys<V>; } with
// NodeKey { uint32 node; opaque private_key<V>; }, sorted by node.
func (k *TreeKeys) Encode(w *codec.Writer) {
	w.U32(k.LeafIndex)
	w.Vector(func(w *codec.Writer) {
		for _, x := range k.Nodes() {
			w.U32(x)
			w.Opaque(k.keys[x])
		}
	})
}

func (k *TreeKeys) Decode(r *codec.Reader) {
	*k = TreeKeys{LeafIndex: r.U32(), keys: map[uint32][]byte{}}
	last := int64(-1)
	r.ReadVector(func(r *codec.Reader) {
		x := r.U32()
		priv := r.Opaque()
		if r.Err() == nil && int64(x) <= last {
			invalid(r, "tree keys not sorted")
		}
		last = int64(x)
		k.keys[x] = priv
	})
}

// Marshal serializes the keys (they are secret: store them encrypted).
func (k *TreeKeys) Marshal() []byte { return marshal(k.Encode) }
func (k *TreeKeys) Unmarshal(b []byte) error {
	return unmarshal("TreeKeys", b, k.Decode)
}

// deriveNodeKey derives a node's key pair from its path secret (§7.4).
func deriveNodeKey(suite *ciphersuite.Suite, pathSecret []byte) (priv, pub []byte, err error) {
	return suite.DeriveKeyPair(suite.DeriveSecret(pathSecret, "node"))
}

// PathGeneration is a committer's fresh UpdatePath (RFC 9420 §7.4, §7.5,
// §12.4.1) before its path secrets are encrypted: GenerateUpdatePath has
// already merged it into the tree. Call Encrypt once the provisional
// GroupContext (with the new tree hash) is known.
type PathGeneration struct {
	Leaf uint32
	// LeafNode is the committer's new, signed leaf (source commit).
	LeafNode *LeafNode
	// FilteredDirectPath lists the parent nodes the path covers, bottom up.
	FilteredDirectPath []uint32
	// CommitSecret is path_secret[n+1] (§12.4.1).
	CommitSecret []byte
	// Keys are the committer's private keys after the commit.
	Keys *TreeKeys

	suite       *ciphersuite.Suite
	pathSecrets [][]byte // parallel to FilteredDirectPath
	publicKeys  [][]byte
}

// GenerateUpdatePath refreshes leaf's key pair and its filtered direct path
// in t (§7.4): it blanks the direct path, derives a chain of path secrets
// and node key pairs, sets the parent hashes, and replaces the leaf with a
// copy of leafNode (the committer's current leaf, possibly with changed
// capabilities, credential, ...) that has the new encryption key, source
// commit and parent hash, signed by signer over groupID and leaf. Apply
// the commit's proposals to t first.
func (t *RatchetTree) GenerateUpdatePath(rand io.Reader, leaf uint32, leafNode *LeafNode, signer ciphersuite.Signer, groupID []byte) (*PathGeneration, error) {
	if t.Leaf(leaf) == nil {
		return nil, fmt.Errorf("generate update path: leaf %d is blank", leaf)
	}
	suite := t.suite
	fdp := t.FilteredDirectPath(leaf)
	leafPriv, leafPub, err := suite.GenerateKeyPair(rand)
	if err != nil {
		return nil, fmt.Errorf("generate update path: %w", err)
	}
	g := &PathGeneration{
		Leaf: leaf, FilteredDirectPath: fdp, suite: suite,
		Keys:        NewTreeKeys(leaf, leafPriv),
		pathSecrets: make([][]byte, len(fdp)),
		publicKeys:  make([][]byte, len(fdp)),
	}
	secret := make([]byte, suite.Nh())
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, fmt.Errorf("generate update path: %w", err)
	}
	t.blankDirectPath(2 * leaf)
	for i, p := range fdp {
		priv, pub, err := deriveNodeKey(suite, secret)
		if err != nil {
			return nil, fmt.Errorf("generate update path: %w", err)
		}
		g.pathSecrets[i] = secret
		g.publicKeys[i] = pub
		g.Keys.SetPrivateKey(p, priv)
		t.setNode(p, &Node{Parent: &ParentNode{EncryptionKey: pub, UnmergedLeaves: []uint32{}}})
		secret = suite.DeriveSecret(secret, "path")
	}
	g.CommitSecret = secret

	ln := leafNode.Clone()
	ln.EncryptionKey = leafPub
	ln.Source = LeafNodeSourceCommit
	ln.Lifetime = Lifetime{}
	ln.ParentHash = t.setPathParentHashes(leaf, fdp)
	if err := ln.Sign(signer, groupID, leaf); err != nil {
		return nil, err
	}
	t.setNode(2*leaf, &Node{Leaf: ln})
	g.LeafNode = ln
	return g, nil
}

// PathSecretFor returns the path secret a new member at leaf must get in
// its Welcome (GroupSecrets.path_secret): the one for the lowest node of
// the filtered direct path above it (§12.4.3.1). ok is false if there is
// none.
func (g *PathGeneration) PathSecretFor(leaf uint32) ([]byte, bool) {
	for i, p := range g.FilteredDirectPath {
		if isDescendant(2*leaf, p) {
			return g.pathSecrets[i], true
		}
	}
	return nil, false
}

// Encrypt builds the UpdatePath (§7.6): each path secret is encrypted to
// the resolution of the copath child of its node, leaving out newLeaves
// (the leaves added by this commit), with EncryptWithLabel(.,
// "UpdatePathNode", groupContext, path_secret). t must be the tree
// GenerateUpdatePath worked on and groupContext the encoded provisional
// GroupContext.
func (g *PathGeneration) Encrypt(t *RatchetTree, groupContext []byte, newLeaves []uint32) (*UpdatePath, error) {
	up := &UpdatePath{LeafNode: *g.LeafNode, Nodes: make([]UpdatePathNode, len(g.FilteredDirectPath))}
	for i, p := range g.FilteredDirectPath {
		c := copathChild(p, g.Leaf)
		res := t.appendResolution(nil, c, newLeaves)
		cts := make([]HPKECiphertext, len(res))
		for j, x := range res {
			kem, ct, err := g.suite.EncryptWithLabel(t.nodes[x].EncryptionKey(), "UpdatePathNode", groupContext, g.pathSecrets[i])
			if err != nil {
				return nil, fmt.Errorf("encrypt path secret to node %d: %w", x, err)
			}
			cts[j] = HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		}
		up.Nodes[i] = UpdatePathNode{EncryptionKey: g.publicKeys[i], EncryptedPathSecret: cts}
	}
	return up, nil
}

// copathChild is the child of parent p that is not on the path to leaf.
func copathChild(p, leaf uint32) uint32 {
	if 2*leaf < p {
		return nodeRight(p)
	}
	return nodeLeft(p)
}

// MergeUpdatePath applies a received UpdatePath from sender to t (§7.5,
// §12.4.2): it checks that the path covers the sender's filtered direct
// path, that the new leaf has source commit, a new encryption key and a
// valid signature over groupID and sender, blanks the direct path, installs
// the new public keys, and checks the leaf's parent_hash against the
// recomputed chain. Other LeafNode checks (§7.3: capabilities, unique keys)
// are the caller's, with LeafNode.Validate and CheckLeafInGroup.
//
// Apply the commit's proposals first. On error t is left half-updated:
// merge into a Clone.
func (t *RatchetTree) MergeUpdatePath(sender uint32, path *UpdatePath, groupID []byte) error {
	old := t.Leaf(sender)
	if old == nil {
		return fmt.Errorf("%w: sender leaf %d is blank", ErrInvalidUpdatePath, sender)
	}
	fdp := t.FilteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return fmt.Errorf("%w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(path.Nodes), len(fdp))
	}
	ln := &path.LeafNode
	if ln.Source != LeafNodeSourceCommit {
		return fmt.Errorf("%w: leaf node source %d", ErrInvalidUpdatePath, ln.Source)
	}
	if bytes.Equal(ln.EncryptionKey, old.EncryptionKey) {
		return fmt.Errorf("%w: leaf encryption key not updated", ErrInvalidUpdatePath)
	}
	if err := ln.VerifySignature(t.suite, groupID, sender); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUpdatePath, err)
	}
	t.blankDirectPath(2 * sender)
	for i, p := range fdp {
		t.setNode(p, &Node{Parent: &ParentNode{EncryptionKey: path.Nodes[i].EncryptionKey, UnmergedLeaves: []uint32{}}})
	}
	if ph := t.setPathParentHashes(sender, fdp); !bytes.Equal(ph, ln.ParentHash) {
		return fmt.Errorf("%w: leaf parent_hash does not match the path", ErrInvalidUpdatePath)
	}
	leafCopy := *ln
	t.setNode(2*sender, &Node{Leaf: &leafCopy})
	return nil
}

// DecryptUpdatePath is the receiving member's second step (§7.5): after
// MergeUpdatePath, it finds the path secret encrypted to a node it holds a
// key for, decrypts it with groupContext (the encoded provisional
// GroupContext), derives the secrets above it, checks that the derived
// public keys match the path, and returns the commit secret and the
// member's updated keys (keys itself is not changed). newLeaves are the
// leaves added by the same commit, left out of the resolutions.
func (t *RatchetTree) DecryptUpdatePath(keys *TreeKeys, sender uint32, path *UpdatePath, groupContext []byte, newLeaves []uint32) (commitSecret []byte, newKeys *TreeKeys, err error) {
	me := keys.LeafIndex
	if me == sender {
		return nil, nil, fmt.Errorf("%w: cannot decrypt own path", ErrInvalidUpdatePath)
	}
	fdp := t.FilteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return nil, nil, fmt.Errorf("%w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(path.Nodes), len(fdp))
	}
	i := slices.IndexFunc(fdp, func(p uint32) bool { return isDescendant(2*me, p) })
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: no path node above leaf %d", ErrInvalidUpdatePath, me)
	}
	res := t.appendResolution(nil, copathChild(fdp[i], sender), newLeaves)
	cts := path.Nodes[i].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, nil, fmt.Errorf("%w: %d ciphertexts for a resolution of %d", ErrInvalidUpdatePath, len(cts), len(res))
	}
	j := slices.IndexFunc(res, func(x uint32) bool { _, ok := keys.keys[x]; return ok })
	if j < 0 {
		return nil, nil, fmt.Errorf("%w: no private key for the resolution of node %d", ErrInvalidUpdatePath, fdp[i])
	}
	secret, err := t.suite.DecryptWithLabel(keys.keys[res[j]], "UpdatePathNode", groupContext, cts[j].KEMOutput, cts[j].Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: decrypt path secret: %w", ErrInvalidUpdatePath, err)
	}
	newKeys = keys.Clone()
	for _, p := range t.DirectPath(2 * sender) {
		delete(newKeys.keys, p)
	}
	commitSecret, err = t.installPath(newKeys, fdp[i:], path.Nodes[i:], secret)
	if err != nil {
		return nil, nil, err
	}
	return commitSecret, newKeys, nil
}

// installPath derives the key pairs of nodes from pathSecret (for nodes[0])
// upward, checks them against the public keys, stores the private keys in
// keys and returns the secret one past the last node (the commit secret).
func (t *RatchetTree) installPath(keys *TreeKeys, nodes []uint32, pub []UpdatePathNode, secret []byte) ([]byte, error) {
	for k, p := range nodes {
		priv, derivedPub, err := deriveNodeKey(t.suite, secret)
		if err != nil {
			return nil, err
		}
		want := t.nodes[p].EncryptionKey()
		if pub != nil {
			want = pub[k].EncryptionKey
		}
		if !bytes.Equal(derivedPub, want) {
			return nil, fmt.Errorf("%w: derived public key for node %d does not match", ErrInvalidUpdatePath, p)
		}
		keys.keys[p] = priv
		secret = t.suite.DeriveSecret(secret, "path")
	}
	return secret, nil
}

// InstallPathSecret is the joiner's side of GroupSecrets.path_secret
// (§12.4.3.1): the path secret belongs to the lowest common ancestor of the
// joiner's leaf and the committer's; the keys for it and the rest of the
// committer's filtered direct path above it are derived, checked against
// the tree and added to a copy of keys. It returns the copy and the commit
// secret.
func (t *RatchetTree) InstallPathSecret(keys *TreeKeys, committer uint32, pathSecret []byte) (*TreeKeys, []byte, error) {
	fdp := t.FilteredDirectPath(committer)
	i := slices.IndexFunc(fdp, func(p uint32) bool { return isDescendant(2*keys.LeafIndex, p) })
	if i < 0 || t.nodes[fdp[i]] == nil {
		return nil, nil, fmt.Errorf("%w: no common ancestor with leaf %d on the committer's path", ErrInvalidUpdatePath, committer)
	}
	for _, p := range fdp[i:] {
		if t.nodes[p] == nil {
			return nil, nil, fmt.Errorf("%w: node %d on the committer's path is blank", ErrInvalidUpdatePath, p)
		}
	}
	newKeys := keys.Clone()
	commitSecret, err := t.installPath(newKeys, fdp[i:], nil, pathSecret)
	if err != nil {
		return nil, nil, err
	}
	return newKeys, commitSecret, nil
}
