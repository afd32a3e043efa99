package mls

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// testMember is a client with fresh keys and a signed KeyPackage.
type testMember struct {
	signer  ciphersuite.Signer
	encPriv []byte
	initKey []byte
	kp      *KeyPackage
}

func testCapabilities() Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolVersionMLS10},
		CipherSuites: []ciphersuite.ID{ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519},
		Extensions:   []ExtensionType{},
		Proposals:    []ProposalType{},
		Credentials:  []CredentialType{CredentialTypeBasic},
	}
}

func newTestMember(tb testing.TB, suite *ciphersuite.Suite, name string) *testMember {
	tb.Helper()
	signer, _, err := suite.GenerateSigner(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	encPriv, encPub, err := suite.GenerateKeyPair(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	_, initPub, err := suite.GenerateKeyPair(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	kp := &KeyPackage{
		Version: ProtocolVersionMLS10, CipherSuite: suite.ID(), InitKey: initPub,
		LeafNode: LeafNode{
			EncryptionKey: encPub, SignatureKey: signer.Public(),
			Credential: NewBasicCredential([]byte(name)), Capabilities: testCapabilities(),
			Source: LeafNodeSourceKeyPackage, Lifetime: Lifetime{NotBefore: 0, NotAfter: 1 << 62},
			Extensions: Extensions{},
		},
		Extensions: Extensions{},
	}
	if err := kp.LeafNode.Sign(signer, nil, 0); err != nil {
		tb.Fatal(err)
	}
	if err := kp.Sign(signer); err != nil {
		tb.Fatal(err)
	}
	return &testMember{signer: signer, encPriv: encPriv, initKey: initPub, kp: kp}
}

func testSuite(tb testing.TB) *ciphersuite.Suite {
	tb.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// testGroup is a tree plus every member's private state, kept in sync by
// the helpers below, as a group of honest clients would.
type testGroup struct {
	suite   *ciphersuite.Suite
	groupID []byte
	epoch   uint64
	tree    *RatchetTree
	members map[uint32]*testMember
	keys    map[uint32]*TreeKeys
}

func newTestGroup(tb testing.TB, n int) *testGroup {
	tb.Helper()
	suite := testSuite(tb)
	creator := newTestMember(tb, suite, "m0")
	g := &testGroup{
		suite: suite, groupID: []byte("test group"),
		tree:    NewRatchetTree(suite, &creator.kp.LeafNode),
		members: map[uint32]*testMember{0: creator},
		keys:    map[uint32]*TreeKeys{0: NewTreeKeys(0, creator.encPriv)},
	}
	for i := 1; i < n; i++ {
		g.add(tb, newTestMember(tb, suite, fmt.Sprintf("m%d", i)))
	}
	return g
}

func (g *testGroup) context(treeHash []byte) []byte {
	gc := GroupContext{Version: ProtocolVersionMLS10, CipherSuite: g.suite.ID(), GroupID: g.groupID, Epoch: g.epoch, TreeHash: treeHash, ConfirmedTranscriptHash: []byte{}, Extensions: Extensions{}}
	return gc.Marshal()
}

// add adds m without a path (an Add-only commit would carry one; the
// helpers keep it simple: commit() refreshes paths).
func (g *testGroup) add(tb testing.TB, m *testMember) uint32 {
	tb.Helper()
	if err := m.kp.Validate(g.suite, 1); err != nil {
		tb.Fatal(err)
	}
	idx, err := g.tree.AddLeaf(&m.kp.LeafNode)
	if err != nil {
		tb.Fatal(err)
	}
	g.members[idx] = m
	g.keys[idx] = NewTreeKeys(idx, m.encPriv)
	return idx
}

// commit has committer send a fresh UpdatePath, and every other member
// process it; it checks they all agree.
func (g *testGroup) commit(tb testing.TB, committer uint32, newLeaves []uint32) *PathGeneration {
	tb.Helper()
	next := g.tree.Clone()
	gen, err := next.GenerateUpdatePath(rand.Reader, committer, next.Leaf(committer), g.members[committer].signer, g.groupID)
	if err != nil {
		tb.Fatal(err)
	}
	gc := g.context(next.TreeHash())
	path, err := gen.Encrypt(next, gc, newLeaves)
	if err != nil {
		tb.Fatal(err)
	}
	for leaf, k := range g.keys {
		if leaf == committer || contains(newLeaves, leaf) {
			continue
		}
		merged := g.tree.Clone()
		if err := merged.MergeUpdatePath(committer, path, g.groupID); err != nil {
			tb.Fatalf("leaf %d: %v", leaf, err)
		}
		cs, nk, err := merged.DecryptUpdatePath(k, committer, path, gc, newLeaves)
		if err != nil {
			tb.Fatalf("leaf %d: %v", leaf, err)
		}
		if string(cs) != string(gen.CommitSecret) {
			tb.Fatalf("leaf %d: commit secret differs", leaf)
		}
		g.keys[leaf] = nk
	}
	for _, leaf := range newLeaves {
		ps, ok := gen.PathSecretFor(leaf)
		if !ok {
			tb.Fatalf("no path secret for new leaf %d", leaf)
		}
		nk, cs, err := next.InstallPathSecret(g.keys[leaf], committer, ps)
		if err != nil {
			tb.Fatalf("new leaf %d: %v", leaf, err)
		}
		if string(cs) != string(gen.CommitSecret) {
			tb.Fatalf("new leaf %d: commit secret differs", leaf)
		}
		g.keys[leaf] = nk
	}
	g.keys[committer] = gen.Keys
	g.tree = next
	g.epoch++
	return gen
}
