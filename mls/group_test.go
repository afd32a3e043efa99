package mls

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
)

// gtMember is one simulated client in a behaviour test.
type gtMember struct {
	name string
	g    *Group
}

func gtSuite(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gtSigKey(t testing.TB, s *ciphersuite.Suite) []byte {
	t.Helper()
	_, priv, err := s.GenerateSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func gtKeyPackage(t testing.TB, s *ciphersuite.Suite, name string) ([]byte, *KeyPackageBundle) {
	t.Helper()
	msg, b, err := NewKeyPackage(s, NewBasicCredential([]byte(name)), gtSigKey(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg, b
}

func gtMarshal(t testing.TB, g *Group) []byte {
	t.Helper()
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deliver hands msg to every gtMember in to, checking it processes.
func gtDeliver(t testing.TB, msg []byte, to ...*gtMember) []*Result {
	t.Helper()
	var rs []*Result
	for _, m := range to {
		r, err := m.g.Process(msg)
		if err != nil {
			t.Fatalf("%s: process: %v", m.name, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// checkAgree asserts all members share epoch, epoch authenticator,
// exporter output and tree hash.
func gtAgree(t testing.TB, ms ...*gtMember) {
	t.Helper()
	ref := ms[0].g
	exp, err := ref.Export("test", []byte("ctx"), 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		// A key index that claims to describe the tree must match one
		// built from scratch.
		if ix := m.g.keyIndex; ix != nil && ix.tree == m.g.tree {
			fresh := buildKeyIndex(m.g.tree)
			if !reflect.DeepEqual(ix.encKeys, fresh.encKeys) || !reflect.DeepEqual(ix.sigKeys, fresh.sigKeys) ||
				!reflect.DeepEqual(ix.credUse, fresh.credUse) || !reflect.DeepEqual(ix.credSupp, fresh.credSupp) ||
				ix.members != fresh.members {
				t.Fatalf("%s: key index out of date", m.name)
			}
		}
	}
	for _, m := range ms[1:] {
		if m.g.Epoch() != ref.Epoch() {
			t.Fatalf("%s at epoch %d, %s at %d", m.name, m.g.Epoch(), ms[0].name, ref.Epoch())
		}
		if !bytes.Equal(m.g.EpochAuthenticator(), ref.EpochAuthenticator()) {
			t.Fatalf("%s: epoch authenticator differs", m.name)
		}
		if !bytes.Equal(m.g.TreeHash(), ref.TreeHash()) {
			t.Fatalf("%s: tree hash differs", m.name)
		}
		e, err := m.g.Export("test", []byte("ctx"), 32)
		if err != nil || !bytes.Equal(e, exp) {
			t.Fatalf("%s: exporter differs (%v)", m.name, err)
		}
	}
}

// commitAndMerge has committer create a commit via f, merges it and
// delivers it to the others; new members join from the Welcome.
func gtCommitMerge(t testing.TB, committer *gtMember, others []*gtMember, out *CommitOutput, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: commit: %v", committer.name, err)
	}
	if _, err := committer.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, out.Commit, others...)
}

func gtJoin(t testing.TB, name string, welcome []byte, b *KeyPackageBundle) *gtMember {
	t.Helper()
	g, err := JoinFromWelcome(welcome, b, nil, nil)
	if err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	return &gtMember{name: name, g: g}
}

func TestGroupMessaging(t *testing.T) {
	for _, id := range ciphersuite.Supported() {
		t.Run(fmt.Sprintf("%#04x", uint16(id)), func(t *testing.T) { runLifecycle(t, gtSuite(t, id)) })
	}
}

func runLifecycle(t *testing.T, s *ciphersuite.Suite) {
	ga, err := CreateGroup(s, []byte("group"), NewBasicCredential([]byte("alice")), gtSigKey(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice := &gtMember{"alice", ga}
	kpB, bB := gtKeyPackage(t, s, "bob")
	kpC, bC := gtKeyPackage(t, s, "carol")
	out, err := alice.g.Add(kpB, kpC)
	gtCommitMerge(t, alice, nil, out, err)
	bob := gtJoin(t, "bob", out.Welcome, bB)
	carol := gtJoin(t, "carol", out.Welcome, bC)
	all := []*gtMember{alice, bob, carol}
	gtAgree(t, all...)

	// Everyone talks.
	for _, from := range all {
		msg, err := from.g.Encrypt([]byte("hi from "+from.name), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range all {
			if to == from {
				continue
			}
			r, err := to.g.Process(msg)
			if err != nil {
				t.Fatalf("%s→%s: %v", from.name, to.name, err)
			}
			if r.Kind != ResultApplication || string(r.Plaintext) != "hi from "+from.name ||
				string(r.AuthenticatedData) != "ad" || string(r.Credential.Identity) != from.name {
				t.Fatalf("%s→%s: wrong result %+v", from.name, to.name, r)
			}
		}
	}

	// Bob updates, then carol adds dave with a public handshake.
	out, err = bob.g.Update()
	gtCommitMerge(t, bob, []*gtMember{alice, carol}, out, err)
	gtAgree(t, all...)

	kpD, bD := gtKeyPackage(t, s, "dave")
	carol.g.cfg.PublicHandshake = true
	out, err = carol.g.Add(kpD)
	gtCommitMerge(t, carol, []*gtMember{alice, bob}, out, err)
	dave := gtJoin(t, "dave", out.Welcome, bD)
	all = append(all, dave)
	gtAgree(t, all...)
	// The joiner knows who added it (the GroupInfo's signer), the others
	// joined by no Welcome.
	if l, ok := dave.g.WelcomeSigner(); !ok || l != carol.g.OwnLeaf() {
		t.Fatalf("dave's WelcomeSigner: %d, %v; carol is leaf %d", l, ok, carol.g.OwnLeaf())
	}
	if l, ok := bob.g.WelcomeSigner(); !ok || l != alice.g.OwnLeaf() {
		t.Fatalf("bob's WelcomeSigner: %d, %v", l, ok)
	}
	if _, ok := alice.g.WelcomeSigner(); ok {
		t.Fatal("the creator has a WelcomeSigner")
	}

	// A proposal by reference: dave proposes removing bob, alice commits.
	prop, ref, err := dave.g.ProposeRemove(bob.g.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	rs := gtDeliver(t, prop, alice, bob, carol)
	if !bytes.Equal(rs[0].ProposalRef, ref) {
		t.Fatal("proposal refs differ")
	}
	out, err = alice.g.Commit(CommitOptions{IncludeReceived: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, out.Commit, carol, dave)
	bobBefore := gtMarshal(t, bob.g) // bob's state before he learns of his removal
	r, err := bob.g.Process(out.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Commit.RemovedSelf || !bob.g.Removed() {
		t.Fatal("bob not told he was removed")
	}
	if len(r.Commit.RemovedMembers) != 1 || string(r.Commit.RemovedMembers[0].Credential.Identity) != "bob" {
		t.Fatalf("removed members %+v", r.Commit.RemovedMembers)
	}
	all = []*gtMember{alice, carol, dave}
	gtAgree(t, all...)

	// Bob cannot read later messages.
	msg, err := alice.g.Encrypt([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, msg, carol, dave)
	if _, err := bob.g.Process(msg); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed gtMember: %v", err)
	}
	if _, err := bob.g.Encrypt([]byte("x"), nil); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed gtMember encrypt: %v", err)
	}
	// Even with the state he had before the removal, bob has no key for
	// the new epoch: the message is for an epoch he cannot reach, and
	// relabelled with his epoch it does not decrypt.
	stale, err := UnmarshalGroup(bobBefore)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Process(msg); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("stale removed member: %v", err)
	}
	relabelled := gtRemarshal(t, msg, func(m *MLSMessage) { m.PrivateMessage.Epoch = stale.Epoch() })
	if _, err := stale.Process(relabelled); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("stale removed member, relabelled message: %v", err)
	}

	// State survives a round trip through MarshalBinary.
	for _, m := range all {
		b := gtMarshal(t, m.g)
		g2, err := UnmarshalGroup(b)
		if err != nil {
			t.Fatalf("%s: unmarshal: %v", m.name, err)
		}
		if !bytes.Equal(gtMarshal(t, g2), b) {
			t.Fatalf("%s: state does not round-trip", m.name)
		}
		m.g = g2
	}
	out, err = dave.g.Update()
	gtCommitMerge(t, dave, []*gtMember{alice, carol}, out, err)
	gtAgree(t, all...)
}
