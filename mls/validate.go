package mls

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// TreeValidation holds the group parameters a received ratchet tree is
// checked against.
type TreeValidation struct {
	// GroupID binds update/commit leaf signatures.
	GroupID []byte
	// TreeHash, if non-nil, must equal the tree's root hash (the
	// GroupInfo's GroupContext.tree_hash).
	TreeHash []byte
	// Extensions are the GroupContext extensions: every leaf must support
	// them and satisfy their required_capabilities.
	Extensions Extensions
	// Now, if non-zero, is the Unix time key_package leaves' lifetimes
	// must cover (RECOMMENDED for received trees, §7.3).
	Now uint64
}

// Validate performs the ratchet tree checks a joiner makes (RFC 9420
// §12.4.3.1): tree hash, parent hashes, every LeafNode (§7.3: signature,
// capabilities against required_capabilities and the group's extensions,
// credential types supported by all members, lifetime), uniqueness of
// signature and encryption keys, and the consistency of unmerged_leaves.
// Credential validation with the authentication service is the caller's.
func (t *RatchetTree) Validate(v *TreeValidation) error {
	if v.TreeHash != nil && !equalBytes(t.TreeHash(), v.TreeHash) {
		return fmt.Errorf("%w: tree hash mismatch", ErrInvalidTree)
	}
	if err := t.VerifyParentHashes(); err != nil {
		return err
	}
	required, _, err := v.Extensions.RequiredCapabilities()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	var credTypes []CredentialType
	sigKeys := make(map[string]struct{})
	encKeys := make(map[string]struct{})
	members := 0
	for x := uint32(0); x < uint32(len(t.nodes)); x++ {
		n := t.nodes[x]
		if n == nil {
			continue
		}
		if _, dup := encKeys[string(n.EncryptionKey())]; dup {
			return fmt.Errorf("%w: node %d repeats an encryption key", ErrInvalidTree, x)
		}
		encKeys[string(n.EncryptionKey())] = struct{}{}
		if n.Parent != nil {
			continue // unmerged_leaves checked by VerifyParentHashes
		}
		members++
		ln := n.Leaf
		if _, dup := sigKeys[string(ln.SignatureKey)]; dup {
			return fmt.Errorf("%w: leaf %d repeats a signature key", ErrInvalidTree, x/2)
		}
		sigKeys[string(ln.SignatureKey)] = struct{}{}
		check := LeafNodeCheck{
			Source: ln.Source, GroupID: v.GroupID, LeafIndex: x / 2, Now: v.Now,
			Required: required, GroupExtensions: v.Extensions,
			SkipSignature: true, // verified in parallel below
		}
		if err := ln.Validate(t.suite, &check); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, x/2, err)
		}
		if !slices.Contains(credTypes, ln.Credential.Type) {
			credTypes = append(credTypes, ln.Credential.Type)
		}
	}
	if members == 0 {
		return fmt.Errorf("%w: no members", ErrInvalidTree)
	}
	if err := t.verifyLeafSignatures(v.GroupID); err != nil {
		return err
	}
	// §7.3: every member supports every credential type in use.
	for x := uint32(0); x < uint32(len(t.nodes)); x += 2 {
		if n := t.nodes[x]; n != nil {
			for _, ct := range credTypes {
				if !n.Leaf.Capabilities.SupportsCredential(ct) {
					return fmt.Errorf("%w: leaf %d does not support credential type %d", ErrInvalidTree, x/2, ct)
				}
			}
		}
	}
	return nil
}

// checkUnmerged checks parent p's unmerged_leaves (§12.4.3.1): increasing,
// non-blank descendants, listed by every non-blank node in between.
func (t *RatchetTree) checkUnmerged(p uint32, pn *ParentNode) error {
	for i, l := range pn.UnmergedLeaves {
		if i > 0 && pn.UnmergedLeaves[i-1] >= l {
			return fmt.Errorf("%w: node %d: unmerged_leaves not increasing", ErrInvalidTree, p)
		}
		if l >= t.NumLeaves() || !isDescendant(2*l, p) || t.nodes[2*l] == nil {
			return fmt.Errorf("%w: node %d: unmerged leaf %d is not a member below it", ErrInvalidTree, p, l)
		}
		for x := nodeParent(2 * l); x != p; x = nodeParent(x) {
			if between := t.ParentNode(x); between != nil {
				if _, found := slices.BinarySearch(between.UnmergedLeaves, l); !found {
					return fmt.Errorf("%w: node %d: unmerged leaf %d missing from node %d", ErrInvalidTree, p, l, x)
				}
			}
		}
	}
	return nil
}

// CheckLeafInGroup performs the group-wide LeafNode checks of §7.3 for a
// leaf about to occupy slot index (an Add, an Update or a commit's new leaf;
// for an Add pass the index it will get, or NumLeaves() when unknown): its
// signature and encryption keys must not appear elsewhere in the tree, its
// credential type must be supported by every other member, and it must
// support every credential type in use. The slot's current occupant is
// ignored, since it is being replaced.
func (t *RatchetTree) CheckLeafInGroup(leaf *LeafNode, index uint32) error {
	for x := uint32(0); x < uint32(len(t.nodes)); x++ {
		n := t.nodes[x]
		if n == nil || x == 2*index {
			continue
		}
		if equalBytes(n.EncryptionKey(), leaf.EncryptionKey) {
			return fmt.Errorf("%w: encryption key already used by node %d", ErrInvalidLeafNode, x)
		}
		if n.Leaf == nil {
			continue
		}
		if equalBytes(n.Leaf.SignatureKey, leaf.SignatureKey) {
			return fmt.Errorf("%w: signature key already used by leaf %d", ErrInvalidLeafNode, x/2)
		}
		if !n.Leaf.Capabilities.SupportsCredential(leaf.Credential.Type) {
			return fmt.Errorf("%w: leaf %d does not support credential type %d", ErrInvalidLeafNode, x/2, leaf.Credential.Type)
		}
		if !leaf.Capabilities.SupportsCredential(n.Leaf.Credential.Type) {
			return fmt.Errorf("%w: credential type %d of leaf %d not supported", ErrInvalidLeafNode, n.Leaf.Credential.Type, x/2)
		}
	}
	return nil
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

// verifyLeafSignatures checks every leaf's signature, spread over the
// available CPUs: for a joiner of a large group it is the dominant cost.
func (t *RatchetTree) verifyLeafSignatures(groupID []byte) error {
	leaves := t.NumLeaves()
	workers := uint32(runtime.GOMAXPROCS(0))
	if workers > leaves/64+1 {
		workers = leaves/64 + 1
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := uint32(0); w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < leaves; i += workers {
				if ln := t.Leaf(i); ln != nil {
					if err := ln.VerifySignature(t.suite, groupID, i); err != nil {
						errs[w] = fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
