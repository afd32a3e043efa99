package mls

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/parleychat/parley/mls/keyschedule"
)

// gtBigGroups builds the states of members 0 and 1 of an n-member group
// directly (adding n members through commits would dominate the run):
// distinct leaves and signature keys, every parent node filled with one
// shared key pair. The Welcome omits the tree, so the measured work is
// the per-commit part.
func gtBigGroups(b *testing.B, n int) (*Group, *Group) {
	b.Helper()
	s := gtSuite(b, 1)
	type leafKeys struct{ sig, enc []byte }
	keys := make([]leafKeys, n)
	var tree *RatchetTree
	for i := 0; i < n; i++ {
		sigPriv := gtSigKey(b, s)
		signer, err := s.NewSigner(sigPriv)
		if err != nil {
			b.Fatal(err)
		}
		ln, encPriv, err := newLeafNode(s, NewBasicCredential(fmt.Appendf(nil, "member %d", i)), signer, nil, Lifetime{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = leafKeys{sigPriv, encPriv}
		if tree == nil {
			tree = NewRatchetTree(s, ln)
		} else if _, err := tree.AddLeaf(ln); err != nil {
			b.Fatal(err)
		}
	}
	priv, pub, err := s.GenerateKeyPair(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for x := uint32(1); x < tree.NumNodes(); x += 2 {
		if lo, _ := subtreeLeaves(x); tree.Leaf(lo) != nil {
			tree.setNode(x, &Node{Parent: &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}}})
		}
	}
	ctx := GroupContext{Version: ProtocolVersionMLS10, CipherSuite: s.ID(), GroupID: []byte("big"), Epoch: 7,
		TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: make([]byte, 32), Extensions: Extensions{}}
	initSecret := make([]byte, 32)
	interim := make([]byte, 32)
	member := func(i uint32) *Group {
		ks, err := keyschedule.NewEpoch(s, initSecret, nil, nil, ctx.Marshal())
		if err != nil {
			b.Fatal(err)
		}
		signer, err := s.NewSigner(keys[i].sig)
		if err != nil {
			b.Fatal(err)
		}
		k := NewTreeKeys(i, keys[i].enc)
		for _, p := range tree.DirectPath(2 * i) {
			if tree.Node(p) != nil {
				k.SetPrivateKey(p, priv)
			}
		}
		g := &Group{cfg: Config{OmitRatchetTree: true}, suite: s, ctx: ctx, tree: tree.Clone(), keys: k, own: i,
			signKey: keys[i].sig, signer: signer, interim: interim}
		if err := g.startEpoch(ks, 0, nil, nil); err != nil {
			b.Fatal(err)
		}
		return g
	}
	return member(0), member(1)
}

// BenchmarkGroupCommitAdd10000 is a member creating and merging the commit
// that adds one member to a 10 000-member group (with its Welcome, without
// the tree in it).
func BenchmarkGroupCommitAdd10000(b *testing.B) {
	alice, _ := gtBigGroups(b, 10000)
	for b.Loop() {
		b.StopTimer()
		kp, _ := gtKeyPackage(b, alice.suite, "newcomer")
		b.StartTimer()
		if _, err := alice.Add(kp); err != nil {
			b.Fatal(err)
		}
		if _, err := alice.MergePendingCommit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGroupProcessAdd10000 is a member processing such a commit.
func BenchmarkGroupProcessAdd10000(b *testing.B) {
	alice, bob := gtBigGroups(b, 10000)
	for b.Loop() {
		b.StopTimer()
		kp, _ := gtKeyPackage(b, alice.suite, "newcomer")
		out, err := alice.Add(kp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := alice.MergePendingCommit(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := bob.Process(out.Commit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGroupState10000 reports the persisted state size of a member of
// a 10 000-member group with kept past epochs and a pending commit.
func BenchmarkGroupState10000(b *testing.B) {
	alice, _ := gtBigGroups(b, 10000)
	for i := 0; i < 3; i++ {
		out, err := alice.Update()
		if err != nil {
			b.Fatal(err)
		}
		_ = out
		if _, err := alice.MergePendingCommit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := alice.Update(); err != nil {
		b.Fatal(err)
	}
	var size int
	for b.Loop() {
		state, err := alice.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		size = len(state)
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB-state")
}
