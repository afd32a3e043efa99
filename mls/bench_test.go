package mls

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// bigTree builds an n-member tree shaped like one that has seen many
// commits: every parent node is filled. Parent keys share one key pair
// (sharedPriv) to keep setup fast; parent hashes are not meaningful, which
// the measured operations do not depend on.
type bigTreeFixture struct {
	tree       *RatchetTree
	signer     ciphersuite.Signer
	leafPriv   []byte
	sharedPriv []byte
	groupID    []byte
}

func newBigTree(b *testing.B, n int) *bigTreeFixture {
	b.Helper()
	suite := testSuite(b)
	m := newTestMember(b, suite, "member")
	f := &bigTreeFixture{signer: m.signer, leafPriv: m.encPriv, groupID: []byte("big group")}
	leaf := m.kp.LeafNode
	f.tree = NewRatchetTree(suite, &leaf)
	for i := 1; i < n; i++ {
		_, pub, err := suite.GenerateKeyPair(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		ln := leaf.Clone()
		ln.EncryptionKey = pub
		ln.Credential = NewBasicCredential(fmt.Appendf(nil, "member %d", i))
		if err := ln.Sign(m.signer, nil, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := f.tree.AddLeaf(ln); err != nil {
			b.Fatal(err)
		}
	}
	priv, pub, err := suite.GenerateKeyPair(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	f.sharedPriv = priv
	for x := uint32(1); x < f.tree.NumNodes(); x += 2 {
		lo, _ := subtreeLeaves(x)
		if f.tree.Leaf(lo) != nil {
			f.tree.setNode(x, &Node{Parent: &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}}})
		}
	}
	f.tree.TreeHash()
	return f
}

func (f *bigTreeFixture) keysFor(leaf uint32) *TreeKeys {
	k := NewTreeKeys(leaf, f.leafPriv)
	for _, p := range f.tree.DirectPath(2 * leaf) {
		if f.tree.Node(p) != nil {
			k.SetPrivateKey(p, f.sharedPriv)
		}
	}
	return k
}

// BenchmarkCommitAdd10000 is the committer's tree work for adding one
// member to a 10 000-member group: clone, add, fresh UpdatePath, tree hash,
// encryption to the copath, and the new member's path secret.
func BenchmarkCommitAdd10000(b *testing.B) {
	f := newBigTree(b, 10000)
	newcomer := newTestMember(b, f.tree.Suite(), "newcomer")
	gc := make([]byte, 120)
	b.ResetTimer()
	for b.Loop() {
		next := f.tree.Clone()
		idx, err := next.AddLeaf(&newcomer.kp.LeafNode)
		if err != nil {
			b.Fatal(err)
		}
		gen, err := next.GenerateUpdatePath(rand.Reader, 0, next.Leaf(0), f.signer, f.groupID)
		if err != nil {
			b.Fatal(err)
		}
		next.TreeHash()
		if _, err := gen.Encrypt(next, gc, []uint32{idx}); err != nil {
			b.Fatal(err)
		}
		if _, ok := gen.PathSecretFor(idx); !ok {
			b.Fatal("no path secret for the new member")
		}
	}
}

// BenchmarkProcessCommit10000 is a receiving member's tree work for the
// same commit: clone, add, merge, tree hash, decrypt.
func BenchmarkProcessCommit10000(b *testing.B) {
	f := newBigTree(b, 10000)
	newcomer := newTestMember(b, f.tree.Suite(), "newcomer")
	gc := make([]byte, 120)
	committed := f.tree.Clone()
	idx, _ := committed.AddLeaf(&newcomer.kp.LeafNode)
	gen, err := committed.GenerateUpdatePath(rand.Reader, 0, committed.Leaf(0), f.signer, f.groupID)
	if err != nil {
		b.Fatal(err)
	}
	path, err := gen.Encrypt(committed, gc, []uint32{idx})
	if err != nil {
		b.Fatal(err)
	}
	receiver := uint32(7777)
	keys := f.keysFor(receiver)
	b.ResetTimer()
	for b.Loop() {
		next := f.tree.Clone()
		if _, err := next.AddLeaf(&newcomer.kp.LeafNode); err != nil {
			b.Fatal(err)
		}
		if err := next.MergeUpdatePath(0, path, f.groupID); err != nil {
			b.Fatal(err)
		}
		next.TreeHash()
		if _, _, err := next.DecryptUpdatePath(keys, 0, path, gc, []uint32{idx}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTreeMemory10000 reports the heap held by a decoded
// 10 000-member tree with all hashes cached.
func BenchmarkTreeMemory10000(b *testing.B) {
	f := newBigTree(b, 10000)
	enc := f.tree.Marshal()
	suite := f.tree.Suite()
	b.ResetTimer()
	var held uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t, err := DecodeRatchetTree(suite, enc)
		if err != nil {
			b.Fatal(err)
		}
		t.TreeHash()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(t)
	}
	b.ReportMetric(float64(held)/(1<<20), "MiB")
	b.ReportMetric(float64(len(enc))/(1<<20), "wire-MiB")
}

// BenchmarkMarshalTree10000 is the cost of the ratchet_tree extension a
// Welcome carries for a 10 000-member group.
func BenchmarkMarshalTree10000(b *testing.B) {
	f := newBigTree(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		f.tree.Marshal()
	}
}

// BenchmarkValidateTree10000 is a joiner's validation of a freshly built
// 10 000-member tree (every leaf's signature, keys, capabilities; the
// parents are blank, as after Add-only commits).
func BenchmarkValidateTree10000(b *testing.B) {
	suite := testSuite(b)
	var tree *RatchetTree
	for i := 0; i < 10000; i++ {
		m := newTestMember(b, suite, fmt.Sprintf("member %d", i))
		if tree == nil {
			tree = NewRatchetTree(suite, &m.kp.LeafNode)
		} else if _, err := tree.AddLeaf(&m.kp.LeafNode); err != nil {
			b.Fatal(err)
		}
	}
	enc := tree.Marshal()
	b.ResetTimer()
	for b.Loop() {
		t, err := DecodeRatchetTree(suite, enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := t.Validate(&TreeValidation{GroupID: []byte("g"), Now: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClone10000 is the copy-on-write snapshot taken per commit.
func BenchmarkClone10000(b *testing.B) {
	f := newBigTree(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		f.tree.Clone()
	}
}
