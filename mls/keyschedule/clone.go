package keyschedule

import (
	"bytes"

	"github.com/parleychat/parley/mls/treemath"
)

// Clone returns an independent deep copy of the tree. Deriving keys
// deletes secrets in place, so a caller that must be able to back out of a
// failed operation (for example a message that decrypts but whose
// signature is bad) works on a clone and keeps it only on success.
func (t *SecretTree) Clone() *SecretTree {
	c := &SecretTree{
		suite:   t.suite,
		nLeaves: t.nLeaves,
		window:  t.window,
		nodes:   make(map[treemath.NodeIndex][]byte, len(t.nodes)),
		leaves:  make(map[treemath.LeafIndex]*leafRatchets, len(t.leaves)),
	}
	for n, s := range t.nodes {
		c.nodes[n] = bytes.Clone(s)
	}
	for l, r := range t.leaves {
		var cr leafRatchets
		for i := range r {
			cr[i] = ratchet{next: r[i].next, secret: bytes.Clone(r[i].secret)}
			if len(r[i].skipped) > 0 {
				cr[i].skipped = make([]KeyNonce, len(r[i].skipped))
				for j, kn := range r[i].skipped {
					cr[i].skipped[j] = KeyNonce{Generation: kn.Generation, Key: bytes.Clone(kn.Key), Nonce: bytes.Clone(kn.Nonce)}
				}
			}
		}
		c.leaves[l] = &cr
	}
	return c
}
