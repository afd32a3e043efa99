// Package prefix is key transparency's Merkle prefix tree: an authenticated
// map from 32-byte indexes (VRF outputs) to 32-byte values (commitments,
// package transparency/commit), with inclusion and non-inclusion proofs that
// clients check against a root hash the directory has published in its log
// (package transparency/log).
//
// It follows draft-ietf-keytrans-protocol-05, §3.3 (construction), §11.9
// (hashing) and §12.2 (proofs); docs/transparency.md explains the choices
// for a reviewer. In short:
//
//   - The tree is binary and keyed by the bits of the index, most
//     significant bit of byte 0 first: a 0 bit goes left, a 1 bit right.
//   - A leaf sits at the shallowest position where it is alone: a node whose
//     subtree holds no index does not exist, one holding exactly one index is
//     that index's leaf, and one holding two or more is a parent. Parents with
//     a single child (the chain above two indexes that share a long prefix)
//     are real nodes, as in the draft: paths are not compressed in the
//     hashes. The shape, hence the root, depends only on the set of entries,
//     never on the order they were inserted in.
//   - leaf  = SHA-256(0x02 || index || value)        (§11.9)
//     parent = SHA-256(0x03 || left || right)        (§11.9)
//     where a child that does not exist counts as 32 zero bytes, and the
//     root of the empty tree is 32 zero bytes too (the draft does not name
//     one; zero is its stand-in for a missing node). No input of SHA-256 is
//     known to give zero, so a missing node never passes for a real one, and
//     the prefix bytes keep leaves and parents apart.
//   - A leaf's hash does not depend on its depth, so when a deletion leaves a
//     leaf alone under its parent the leaf moves up unchanged.
//
// Trees are persistent: Insert and Delete return a new Tree that shares all
// unchanged nodes with the old one, which stays valid and provable. The
// directory keeps one Tree per epoch for as long as it wants to serve proofs
// against that epoch's root.
//
// Where this package departs from the draft (docs/transparency.md has the
// reasons): values may be replaced and entries deleted (the draft's tree
// only grows, one key per label-version pair, with removal only for expired
// versions); proofs are for one index at a time; the depth of a proof is a
// uint16, since a leaf can sit at depth 256 which the draft's uint8 cannot
// express; and the proof encoding lists a bitmap of present siblings instead
// of repeating 32 zero bytes for each missing one.
package prefix

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
)

// IndexSize is the size of an index in bytes: VRF.Nh of the
// KT_128_SHA256_Ed25519 cipher suite (§17.1).
const IndexSize = 32

// HashSize is the size of every node value, SHA-256's Nh.
const HashSize = sha256.Size

// MaxDepth is the greatest depth of a node: two indexes that differ only in
// their last bit have a parent at depth 255 and leaves at depth 256.
const MaxDepth = IndexSize * 8

// Domain separation bytes of §11.9.
const (
	leafPrefix   = 0x02
	parentPrefix = 0x03
)

// Index is a key of the tree: the VRF output for a label (or label and
// version), or a hash of it.
type Index [IndexSize]byte

// String returns the index in hex.
func (i Index) String() string { return hex.EncodeToString(i[:]) }

// bit returns bit d (0 = most significant bit of byte 0) of the index: the
// direction taken at depth d, 0 left and 1 right.
func (i *Index) bit(d int) int { return int(i[d>>3]>>(7-uint(d&7))) & 1 }

// Value is what the tree maps an index to: a commitment.
type Value [HashSize]byte

// Hash is a node value; the root of a tree is one.
type Hash [HashSize]byte

// Entry is one mapping of the tree.
type Entry struct {
	Index Index
	Value Value
}

var (
	// ErrDuplicateIndex is returned by Insert and Delete for a batch that
	// names the same index twice.
	ErrDuplicateIndex = errors.New("prefix: index appears twice in one batch")
	// ErrNotFound is returned by Delete for an index the tree does not hold.
	ErrNotFound = errors.New("prefix: index not in the tree")
)

// node is a leaf (entry != nil) or a parent (entry == nil, at least one
// child non-nil). Nodes are never modified once built, which is what lets
// trees share them.
type node struct {
	hash  Hash
	child [2]*node
	entry *Entry
}

// leafHash returns SHA-256(0x02 || index || value) (§11.9).
func leafHash(index *Index, value *Value) Hash {
	var buf [1 + IndexSize + HashSize]byte
	buf[0] = leafPrefix
	copy(buf[1:], index[:])
	copy(buf[1+IndexSize:], value[:])
	return sha256.Sum256(buf[:])
}

// parentHash returns SHA-256(0x03 || left || right) (§11.9); a missing
// child is passed as the zero Hash.
func parentHash(left, right *Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = parentPrefix
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

func (n *node) hashOrZero() Hash {
	if n == nil {
		return Hash{}
	}
	return n.hash
}

func newLeaf(e Entry) *node {
	ec := e
	return &node{hash: leafHash(&ec.Index, &ec.Value), entry: &ec}
}

// newParent returns the node with the given children, in canonical form:
// nil when both are nil, and the leaf itself when the only child is a leaf
// (a leaf alone in a subtree sits at the subtree's head).
func newParent(left, right *node) *node {
	switch {
	case left == nil && right == nil:
		return nil
	case left == nil && right.entry != nil:
		return right
	case right == nil && left.entry != nil:
		return left
	}
	l, r := left.hashOrZero(), right.hashOrZero()
	return &node{hash: parentHash(&l, &r), child: [2]*node{left, right}}
}

// Tree is an immutable prefix tree. The zero value is the empty tree, as
// is Empty(). A *Tree is safe for concurrent use: nothing changes it.
type Tree struct {
	root *node
	size int
}

// Empty returns the tree with no entries. Its root is the zero Hash.
func Empty() *Tree { return &Tree{} }

// Root returns the root hash, which the directory publishes in its log.
func (t *Tree) Root() Hash { return t.root.hashOrZero() }

// Len returns the number of entries.
func (t *Tree) Len() int { return t.size }

// Get returns the value for index, without a proof.
func (t *Tree) Get(index Index) (Value, bool) {
	n := t.root
	for d := 0; n != nil; d++ {
		if n.entry != nil {
			if n.entry.Index == index {
				return n.entry.Value, true
			}
			return Value{}, false
		}
		n = n.child[index.bit(d)]
	}
	return Value{}, false
}

// All yields every entry in increasing index order.
func (t *Tree) All() iter.Seq2[Index, Value] {
	return func(yield func(Index, Value) bool) {
		var walk func(n *node) bool
		walk = func(n *node) bool {
			if n == nil {
				return true
			}
			if n.entry != nil {
				return yield(n.entry.Index, n.entry.Value)
			}
			return walk(n.child[0]) && walk(n.child[1])
		}
		walk(t.root)
	}
}

// op is one change of a batch: set Index to Value, or delete Index.
type op struct {
	Entry
	del bool
}

// Insert returns a tree in which every entry of batch is set, replacing the
// value of an index already present (an upsert). t itself is unchanged.
// The batch may be in any order and is not modified; an index may appear
// only once (ErrDuplicateIndex).
func (t *Tree) Insert(batch []Entry) (*Tree, error) {
	ops := make([]op, len(batch))
	for i, e := range batch {
		ops[i] = op{Entry: e}
	}
	return t.apply(ops)
}

// Delete returns a tree without the given indexes, each of which must be
// present (ErrNotFound) and named once (ErrDuplicateIndex). t itself is
// unchanged.
func (t *Tree) Delete(indexes []Index) (*Tree, error) {
	ops := make([]op, len(indexes))
	for i, x := range indexes {
		ops[i] = op{Entry: Entry{Index: x}, del: true}
	}
	return t.apply(ops)
}

func (t *Tree) apply(ops []op) (*Tree, error) {
	if len(ops) == 0 {
		return t, nil
	}
	slices.SortFunc(ops, func(a, b op) int { return bytes.Compare(a.Index[:], b.Index[:]) })
	for i := 1; i < len(ops); i++ {
		if ops[i].Index == ops[i-1].Index {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateIndex, ops[i].Index)
		}
	}
	a := applier{size: t.size}
	root, err := a.apply(t.root, 0, ops)
	if err != nil {
		return nil, err
	}
	return &Tree{root: root, size: a.size}, nil
}

// applier carries the running entry count through one batch.
type applier struct{ size int }

// apply returns the subtree at depth d that results from applying ops,
// sorted by index and all sharing the subtree's d-bit prefix, to n.
func (a *applier) apply(n *node, d int, ops []op) (*node, error) {
	if len(ops) == 0 {
		return n, nil
	}
	if n == nil || n.entry != nil {
		return a.merge(n, d, ops)
	}
	split := splitAt(ops, d)
	left, err := a.apply(n.child[0], d+1, ops[:split])
	if err != nil {
		return nil, err
	}
	right, err := a.apply(n.child[1], d+1, ops[split:])
	if err != nil {
		return nil, err
	}
	return newParent(left, right), nil
}

// merge applies ops to a subtree that is empty (leaf == nil) or a single
// leaf, by building the subtree of the resulting entries afresh.
func (a *applier) merge(leaf *node, d int, ops []op) (*node, error) {
	entries := make([]Entry, 0, len(ops)+1)
	keep := leaf != nil
	for _, o := range ops {
		if leaf != nil && o.Index == leaf.entry.Index {
			keep = false
			if o.del {
				a.size--
				continue
			}
			entries = append(entries, o.Entry)
			continue
		}
		if o.del {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, o.Index)
		}
		a.size++
		entries = append(entries, o.Entry)
	}
	var reuse *node
	if keep {
		i, _ := slices.BinarySearchFunc(entries, leaf.entry.Index, func(e Entry, x Index) int {
			return bytes.Compare(e.Index[:], x[:])
		})
		entries = slices.Insert(entries, i, *leaf.entry)
		reuse = leaf
	}
	return build(d, entries, reuse), nil
}

// build returns the canonical subtree at depth d holding entries, which are
// sorted by index, distinct, and share their first d bits. reuse, if not
// nil, is an existing leaf for one of the entries, used as is rather than
// hashed again (a leaf's hash does not depend on its depth).
func build(d int, entries []Entry, reuse *node) *node {
	switch len(entries) {
	case 0:
		return nil
	case 1:
		if reuse != nil && reuse.entry.Index == entries[0].Index {
			return reuse
		}
		return newLeaf(entries[0])
	}
	split := sort.Search(len(entries), func(i int) bool { return entries[i].Index.bit(d) == 1 })
	return newParent(build(d+1, entries[:split], reuse), build(d+1, entries[split:], reuse))
}

// splitAt returns the position of the first op whose bit d is 1; ops are
// sorted and share their first d bits, so those with bit d = 0 come first.
func splitAt(ops []op, d int) int {
	return sort.Search(len(ops), func(i int) bool { return ops[i].Index.bit(d) == 1 })
}

// Build returns the tree holding exactly entries, which may be in any order
// (ErrDuplicateIndex if an index repeats): Empty().Insert(entries).
func Build(entries []Entry) (*Tree, error) {
	return Empty().Insert(entries)
}

// Lookup returns the value stored for index, whether it is present, and a
// proof of that answer against t.Root(): an inclusion proof if present,
// a non-inclusion proof if not.
func (t *Tree) Lookup(index Index) (Value, bool, *Proof) {
	p := &Proof{}
	n := t.root
	for d := 0; ; d++ {
		switch {
		case n == nil:
			// The search ended at a missing node: the stand-in leaf of a
			// parent without the child we need, or the empty tree's root.
			p.Result = NonInclusionParent
			return Value{}, false, p
		case n.entry != nil && n.entry.Index == index:
			p.Result = Inclusion
			return n.entry.Value, true, p
		case n.entry != nil:
			p.Result = NonInclusionLeaf
			p.Leaf = *n.entry
			return Value{}, false, p
		}
		b := index.bit(d)
		p.Siblings = append(p.Siblings, n.child[1-b].hashOrZero())
		n = n.child[b]
	}
}
