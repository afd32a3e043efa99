package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

// checkTree runs joiner validation and compares the cached tree hash with a
// fresh computation over the re-decoded tree.
func (g *testGroup) checkTree(t *testing.T) {
	t.Helper()
	fresh, err := DecodeRatchetTree(g.suite, g.tree.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh.TreeHash(), g.tree.TreeHash()) {
		t.Fatal("cached tree hash is stale")
	}
	if err := fresh.Validate(&TreeValidation{GroupID: g.groupID, TreeHash: g.tree.TreeHash(), Now: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestGroupLifecycle(t *testing.T) {
	g := newTestGroup(t, 5)
	g.checkTree(t)
	g.commit(t, 0, nil)
	g.checkTree(t)
	g.commit(t, 3, nil)
	g.checkTree(t)

	// Add two members and commit in the same step: they are excluded from
	// the encryption and get their path secret as if from a Welcome.
	a := g.add(t, newTestMember(t, g.suite, "new1"))
	b := g.add(t, newTestMember(t, g.suite, "new2"))
	if a != 5 || b != 6 {
		t.Fatalf("new leaves at %d, %d", a, b)
	}
	g.checkTree(t) // unmerged leaves are consistent
	g.commit(t, 1, []uint32{a, b})
	g.checkTree(t)

	// Remove leaf 2: a blank slot that the next Add fills.
	if err := g.tree.RemoveLeaf(2); err != nil {
		t.Fatal(err)
	}
	delete(g.members, 2)
	delete(g.keys, 2)
	g.checkTree(t)
	g.commit(t, 6, nil)
	g.checkTree(t)
	c := g.add(t, newTestMember(t, g.suite, "new3"))
	if c != 2 {
		t.Fatalf("new member at %d, want the blank leaf 2", c)
	}
	g.commit(t, 4, []uint32{c})
	g.checkTree(t)

	// An Update blanks the direct path.
	m := newTestMember(t, g.suite, "m0")
	upd := m.kp.LeafNode.Clone()
	upd.Source = LeafNodeSourceUpdate
	upd.SignatureKey = g.members[0].signer.Public()
	if err := upd.Sign(g.members[0].signer, g.groupID, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.UpdateLeaf(0, upd); err != nil {
		t.Fatal(err)
	}
	g.keys[0] = NewTreeKeys(0, m.encPriv)
	for _, p := range g.tree.DirectPath(0) {
		if g.tree.Node(p) != nil {
			t.Fatalf("node %d not blanked by Update", p)
		}
	}
	for _, k := range g.keys {
		k.Prune(g.tree)
	}
	g.checkTree(t)
	g.commit(t, 5, nil)
	g.checkTree(t)

	// Removing the rightmost members truncates the tree.
	for _, l := range []uint32{6, 5, 4} {
		if err := g.tree.RemoveLeaf(l); err != nil {
			t.Fatal(err)
		}
		delete(g.members, l)
		delete(g.keys, l)
	}
	if g.tree.NumLeaves() != 4 {
		t.Fatalf("tree has %d leaves after truncation, want 4", g.tree.NumLeaves())
	}
	for _, k := range g.keys {
		k.Prune(g.tree)
	}
	g.checkTree(t)
	g.commit(t, 0, nil)
	g.checkTree(t)
	if err := g.tree.RemoveLeaf(4); err == nil {
		t.Fatal("removed a leaf outside the tree")
	}
}

func TestTreeRejectsTampering(t *testing.T) {
	g := newTestGroup(t, 4)
	g.commit(t, 0, nil)
	g.commit(t, 2, nil)
	base := g.tree.Marshal()
	valid := func(tree *RatchetTree) error {
		return tree.Validate(&TreeValidation{GroupID: g.groupID, Now: 1})
	}
	cases := []struct {
		name   string
		mutate func(tree *RatchetTree)
	}{
		{"parent key", func(tree *RatchetTree) {
			p := *tree.ParentNode(1)
			p.EncryptionKey = g.tree.Leaf(3).EncryptionKey
			tree.setNode(1, &Node{Parent: &p})
		}},
		{"parent hash", func(tree *RatchetTree) {
			p := *tree.ParentNode(3)
			p.ParentHash = []byte("forged")
			tree.setNode(3, &Node{Parent: &p})
		}},
		{"leaf signature", func(tree *RatchetTree) {
			ln := tree.Leaf(1).Clone()
			ln.Credential = NewBasicCredential([]byte("mallory"))
			tree.setNode(2, &Node{Leaf: ln})
		}},
		{"duplicate signature key", func(tree *RatchetTree) {
			// Re-sign leaf 1 with leaf 3's signature key and signer.
			ln := tree.Leaf(1).Clone()
			ln.SignatureKey = g.members[3].signer.Public()
			if err := ln.Sign(g.members[3].signer, g.groupID, 1); err != nil {
				t.Fatal(err)
			}
			tree.setNode(2, &Node{Leaf: ln})
		}},
		{"unmerged leaf not below", func(tree *RatchetTree) {
			p := *tree.ParentNode(1)
			p.UnmergedLeaves = []uint32{3}
			tree.setNode(1, &Node{Parent: &p})
		}},
		{"blank parent added", func(tree *RatchetTree) {
			tree.setNode(5, &Node{Parent: &ParentNode{EncryptionKey: []byte("k"), ParentHash: []byte{}, UnmergedLeaves: []uint32{}}})
		}},
		{"unsupported credential type", func(tree *RatchetTree) {
			ln := tree.Leaf(1).Clone()
			ln.Capabilities.Credentials = []CredentialType{CredentialTypeX509}
			ln.Credential = Credential{Type: CredentialTypeX509, Certificates: [][]byte{}}
			if err := ln.Sign(g.members[1].signer, g.groupID, 1); err != nil {
				t.Fatal(err)
			}
			tree.setNode(2, &Node{Leaf: ln})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree, err := DecodeRatchetTree(g.suite, base)
			if err != nil {
				t.Fatal(err)
			}
			if err := valid(tree); err != nil {
				t.Fatalf("untampered tree: %v", err)
			}
			c.mutate(tree)
			if err := valid(tree); !errors.Is(err, ErrInvalidTree) {
				t.Fatalf("tampered tree: got %v", err)
			}
		})
	}
	tree, _ := DecodeRatchetTree(g.suite, base)
	if err := tree.Validate(&TreeValidation{GroupID: g.groupID, TreeHash: []byte("other")}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("wrong tree hash: got %v", err)
	}
	rc := RequiredCapabilities{ExtensionTypes: []ExtensionType{0x7777}, ProposalTypes: []ProposalType{}, CredentialTypes: []CredentialType{}}
	if err := tree.Validate(&TreeValidation{GroupID: g.groupID, Extensions: Extensions{rc.Extension()}}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("unsatisfied required_capabilities: got %v", err)
	}
}

func TestUpdatePathRejects(t *testing.T) {
	g := newTestGroup(t, 4)
	g.commit(t, 1, nil)
	next := g.tree.Clone()
	gen, err := next.GenerateUpdatePath(rand.Reader, 0, next.Leaf(0), g.members[0].signer, g.groupID)
	if err != nil {
		t.Fatal(err)
	}
	gc := g.context(next.TreeHash())
	path, err := gen.Encrypt(next, gc, nil)
	if err != nil {
		t.Fatal(err)
	}
	merge := func(p *UpdatePath) error { return g.tree.Clone().MergeUpdatePath(0, p, g.groupID) }
	if err := merge(path); err != nil {
		t.Fatalf("valid path: %v", err)
	}
	clonePath := func() *UpdatePath {
		var p UpdatePath
		if err := p.Unmarshal(path.Marshal()); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	short := clonePath()
	short.Nodes = short.Nodes[1:]
	badKey := clonePath()
	badKey.Nodes[0].EncryptionKey = badKey.Nodes[1].EncryptionKey
	badSig := clonePath()
	badSig.LeafNode.Signature[0] ^= 1
	for name, p := range map[string]*UpdatePath{"short": short, "parent hash": badKey, "signature": badSig} {
		if err := merge(p); !errors.Is(err, ErrInvalidUpdatePath) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	merged := g.tree.Clone()
	if err := merged.MergeUpdatePath(0, path, g.groupID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := merged.DecryptUpdatePath(g.keys[3], 0, path, g.context([]byte("wrong")), nil); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Errorf("wrong group context: got %v", err)
	}
	if _, _, err := merged.DecryptUpdatePath(g.keys[3], 0, path, gc, []uint32{2}); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Errorf("wrong exclusion list: got %v", err)
	}
	before := g.keys[3].Marshal()
	cs, _, err := merged.DecryptUpdatePath(g.keys[3], 0, path, gc, nil)
	if err != nil || !bytes.Equal(cs, gen.CommitSecret) {
		t.Fatalf("decrypt: %v", err)
	}
	if !bytes.Equal(g.keys[3].Marshal(), before) {
		t.Fatal("DecryptUpdatePath changed its input keys")
	}
}

func TestCheckLeafInGroup(t *testing.T) {
	g := newTestGroup(t, 3)
	m := newTestMember(t, g.suite, "x")
	if err := g.tree.CheckLeafInGroup(&m.kp.LeafNode, g.tree.NumLeaves()); err != nil {
		t.Fatal(err)
	}
	dup := m.kp.LeafNode.Clone()
	dup.SignatureKey = g.tree.Leaf(1).SignatureKey
	if err := g.tree.CheckLeafInGroup(dup, 3); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("duplicate signature key: got %v", err)
	}
	// Replacing leaf 1 with itself is fine: its own slot is ignored.
	if err := g.tree.CheckLeafInGroup(g.tree.Leaf(1), 1); err != nil {
		t.Fatal(err)
	}
	x509 := m.kp.LeafNode.Clone()
	x509.Credential = Credential{Type: CredentialTypeX509, Certificates: [][]byte{}}
	if err := g.tree.CheckLeafInGroup(x509, 3); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("unsupported credential type: got %v", err)
	}
}

func TestKeyPackageValidate(t *testing.T) {
	suite := testSuite(t)
	m := newTestMember(t, suite, "kp")
	if err := m.kp.Validate(suite, 1); err != nil {
		t.Fatal(err)
	}
	ref := m.kp.Ref(suite)
	if len(ref) != suite.Nh() || !bytes.Equal(ref, m.kp.Ref(suite)) {
		t.Fatal("KeyPackageRef not a stable hash")
	}
	mutations := map[string]func(kp *KeyPackage){
		"suite":       func(kp *KeyPackage) { kp.CipherSuite = 2 },
		"signature":   func(kp *KeyPackage) { kp.Signature = append([]byte{}, kp.Signature...); kp.Signature[0] ^= 1 },
		"init key":    func(kp *KeyPackage) { kp.InitKey = kp.LeafNode.EncryptionKey },
		"lifetime":    func(kp *KeyPackage) { kp.LeafNode.Lifetime = Lifetime{NotBefore: 10, NotAfter: 20} },
		"leaf source": func(kp *KeyPackage) { kp.LeafNode.Source = LeafNodeSourceUpdate },
	}
	for name, mutate := range mutations {
		var kp KeyPackage
		if err := kp.Unmarshal(m.kp.Marshal()); err != nil {
			t.Fatal(err)
		}
		mutate(&kp)
		if err := kp.Validate(suite, 1); !errors.Is(err, ErrInvalidKeyPackage) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestTreeKeysDecodeRejects(t *testing.T) {
	k := NewTreeKeys(2, []byte("leaf"))
	k.SetPrivateKey(5, []byte("p5"))
	k.SetPrivateKey(7, []byte("p7"))
	var got TreeKeys
	if err := got.Unmarshal(k.Marshal()); err != nil {
		t.Fatal(err)
	}
	if p, ok := got.PrivateKey(7); !ok || string(p) != "p7" {
		t.Fatal("key 7 lost")
	}
	// Entries out of order are rejected: swap 5 and 7.
	enc := []byte{0, 0, 0, 2, 14, 0, 0, 0, 7, 2, 'p', '7', 0, 0, 0, 5, 2, 'p', '5'}
	if err := got.Unmarshal(enc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsorted keys: got %v", err)
	}
}

// TestTreeHashCacheIsLocal checks that a commit invalidates only the cached
// hashes along the committer's path (and the new leaf's), so recomputing
// the tree hash costs O(log n) hashes, not O(n).
func TestTreeHashCacheIsLocal(t *testing.T) {
	g := newTestGroup(t, 60)
	g.tree.TreeHash()
	stale := func(tree *RatchetTree) int {
		n := 0
		for _, h := range tree.hashes {
			if h == nil {
				n++
			}
		}
		return n
	}
	if n := stale(g.tree); n != 0 {
		t.Fatalf("%d stale hashes after TreeHash", n)
	}
	next := g.tree.Clone()
	if _, err := next.AddLeaf(&newTestMember(t, g.suite, "late").kp.LeafNode); err != nil {
		t.Fatal(err)
	}
	if _, err := next.GenerateUpdatePath(rand.Reader, 5, next.Leaf(5), g.members[5].signer, g.groupID); err != nil {
		t.Fatal(err)
	}
	depth := len(next.DirectPath(0))
	if n := stale(next); n > 2*(depth+1) {
		t.Fatalf("%d stale hashes after a commit in a tree of depth %d", n, depth)
	}
	if n := stale(g.tree); n != 0 {
		t.Fatalf("the clone's changes made %d of the original's hashes stale", n)
	}
	fresh, err := DecodeRatchetTree(g.suite, next.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh.TreeHash(), next.TreeHash()) {
		t.Fatal("incremental tree hash differs from a full recomputation")
	}
}

func TestLeafNodeValidateReplaces(t *testing.T) {
	g := newTestGroup(t, 2)
	old := g.tree.Leaf(1)
	upd := old.Clone()
	upd.Source = LeafNodeSourceUpdate
	if err := upd.Sign(g.members[1].signer, g.groupID, 1); err != nil {
		t.Fatal(err)
	}
	check := LeafNodeCheck{Source: LeafNodeSourceUpdate, GroupID: g.groupID, LeafIndex: 1, Replaces: old}
	if err := upd.Validate(g.suite, &check); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("unchanged encryption key: got %v", err)
	}
	_, pub, err := g.suite.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	upd.EncryptionKey = pub
	if err := upd.Validate(g.suite, &check); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("stale signature: got %v", err)
	}
	if err := upd.Sign(g.members[1].signer, g.groupID, 1); err != nil {
		t.Fatal(err)
	}
	if err := upd.Validate(g.suite, &check); err != nil {
		t.Fatal(err)
	}
	check.LeafIndex = 0
	if err := upd.Validate(g.suite, &check); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("signature bound to another leaf index: got %v", err)
	}
}

func TestInstallPathSecretRejects(t *testing.T) {
	g := newTestGroup(t, 3)
	newLeaf := g.add(t, newTestMember(t, g.suite, "joiner"))
	gen := g.commit(t, 0, []uint32{newLeaf})
	ps, ok := gen.PathSecretFor(newLeaf)
	if !ok {
		t.Fatal("no path secret for the joiner")
	}
	fresh := NewTreeKeys(newLeaf, g.members[newLeaf].encPriv)
	wrong := append([]byte{}, ps...)
	wrong[0] ^= 1
	if _, _, err := g.tree.InstallPathSecret(fresh, 0, wrong); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Fatalf("wrong path secret: got %v", err)
	}
	// With leaf 2 as committer the common ancestor is node 5, not the
	// root the secret belongs to.
	if _, _, err := g.tree.InstallPathSecret(fresh, 2, ps); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Fatal("path secret accepted for the wrong committer")
	}
	keys, cs, err := g.tree.InstallPathSecret(fresh, 0, ps)
	if err != nil || !bytes.Equal(cs, gen.CommitSecret) {
		t.Fatalf("install: %v", err)
	}
	if _, ok := fresh.PrivateKey(g.tree.Root()); ok {
		t.Fatal("InstallPathSecret changed its input keys")
	}
	if _, ok := keys.PrivateKey(g.tree.Root()); !ok {
		t.Fatal("joiner did not get the root key")
	}
}
