package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/mls/keyschedule"
)

// gtThree builds alice (creator), bob and carol in one group.
func gtThree(t *testing.T, cfg Config) (*ciphersuite.Suite, *gtMember, *gtMember, *gtMember) {
	t.Helper()
	s := gtSuite(t, 1)
	ga, err := CreateGroup(s, []byte("group"), NewBasicCredential([]byte("alice")), gtSigKey(t, s), &CreateOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	alice := &gtMember{"alice", ga}
	kpB, bB := gtKeyPackage(t, s, "bob")
	kpC, bC := gtKeyPackage(t, s, "carol")
	out, err := alice.g.Add(kpB, kpC)
	gtCommitMerge(t, alice, nil, out, err)
	join := func(name string, b *KeyPackageBundle) *gtMember {
		g, err := JoinFromWelcome(out.Welcome, b, nil, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		return &gtMember{name, g}
	}
	return s, alice, join("bob", bB), join("carol", bC)
}

// gtForge frames c as a PublicMessage from g's own leaf, validly signed and
// with a valid membership tag for g's current epoch.
func gtForge(t *testing.T, g *Group, c *FramedContent, confirmationTag []byte) []byte {
	t.Helper()
	ctx := g.groupContextBytes()
	ac, err := signContent(g.signer, WireFormatPublicMessage, c, ctx)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = confirmationTag
	return (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
		PublicMessage: protectPublic(g.suite, ac, g.ks.MembershipKey, ctx)}).Marshal()
}

func gtRemarshal(t testing.TB, msg []byte, edit func(m *MLSMessage)) []byte {
	t.Helper()
	var m MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	return m.Marshal()
}

func TestProcessRejectsAndLeavesStateUnchanged(t *testing.T) {
	s, alice, bob, _ := gtThree(t, Config{Window: keyschedule.Window{MaxForward: 4, MaxSkipped: 4}})
	app, err := alice.g.Encrypt([]byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, app, bob)

	commitContent := func(c *Commit) *FramedContent {
		return &FramedContent{GroupID: alice.g.ctx.GroupID, Epoch: alice.g.ctx.Epoch, Sender: alice.g.ownSender(),
			AuthenticatedData: []byte{}, ContentType: ContentTypeCommit, Commit: c}
	}
	kpD, _ := gtKeyPackage(t, s, "dave")
	kp, err := parseKeyPackage(kpD)
	if err != nil {
		t.Fatal(err)
	}
	addD := ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}}}
	tag := s.MAC([]byte("k"), []byte("x"))

	// A valid public commit from alice, to tamper with.
	alice.g.cfg.PublicHandshake = true
	good, err := alice.g.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.DiscardPendingCommit(); err != nil {
		t.Fatal(err)
	}
	// Messages sent while far ahead of the receiver's window.
	var far []byte
	for i := 0; i < 7; i++ {
		if far, err = alice.g.Encrypt([]byte("m"), nil); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name string
		msg  []byte
		want error
	}{
		{"truncated", app[:len(app)-3], ErrMalformed},
		{"trailing byte", append(bytes.Clone(app), 0), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"wrong group", gtRemarshal(t, app, func(m *MLSMessage) { m.PrivateMessage.GroupID = []byte("other") }), ErrWrongGroup},
		{"future epoch", gtRemarshal(t, app, func(m *MLSMessage) { m.PrivateMessage.Epoch += 5 }), ErrWrongEpoch},
		{"replay", app, ErrReplay},
		{"too far ahead", far, ErrTooFarAhead},
		{"tampered ciphertext", gtRemarshal(t, app, func(m *MLSMessage) { m.PrivateMessage.Ciphertext[3] ^= 1 }), ErrDecrypt},
		{"bad membership tag", gtRemarshal(t, good.Commit, func(m *MLSMessage) { m.PublicMessage.MembershipTag[0] ^= 1 }), ErrBadMembershipTag},
		{"bad signature", func() []byte {
			var m MLSMessage
			_ = m.Unmarshal(good.Commit)
			ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: m.PublicMessage.Content, Auth: m.PublicMessage.Auth}
			ac.Auth.Signature = bytes.Clone(ac.Auth.Signature)
			ac.Auth.Signature[5] ^= 1
			m.PublicMessage = protectPublic(s, ac, alice.g.ks.MembershipKey, alice.g.groupContextBytes())
			return m.Marshal()
		}(), ErrBadSignature},
		{"bad confirmation tag", func() []byte {
			var m MLSMessage
			_ = m.Unmarshal(good.Commit)
			c := m.PublicMessage.Content
			return gtForge(t, alice.g, &c, tag)
		}(), ErrBadConfirmationTag},
		{"unknown sender", gtRemarshal(t, good.Commit, func(m *MLSMessage) { m.PublicMessage.Content.Sender.Index = 9 }), ErrUnknownSender},
		{"commit removing the committer", gtForge(t, alice.g, commitContent(&Commit{Proposals: []ProposalOrRef{
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 0}}}}}), tag), ErrInvalidCommit},
		{"duplicate adds", gtForge(t, alice.g, commitContent(&Commit{Proposals: []ProposalOrRef{addD, addD}}), tag), ErrInvalidCommit},
		{"missing path", gtForge(t, alice.g, commitContent(&Commit{Proposals: []ProposalOrRef{}}), tag), ErrInvalidCommit},
		{"remove of a blank leaf", gtForge(t, alice.g, commitContent(&Commit{Proposals: []ProposalOrRef{
			{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 3}}}}}), tag), ErrInvalidProposal},
		{"unknown proposal reference", gtForge(t, alice.g, commitContent(&Commit{Proposals: []ProposalOrRef{
			{Type: ProposalOrRefReference, Reference: make([]byte, 32)}}}), tag), ErrInvalidCommit},
		{"welcome is not a group message", gtDummyWelcome(t, s), ErrUnsupported},
		{"path with a wrong parent hash", gtEditPath(t, alice.g, good.Commit, tag, func(p *UpdatePath) {
			p.LeafNode.ParentHash = bytes.Repeat([]byte{9}, len(p.LeafNode.ParentHash))
		}), ErrInvalidUpdatePath},
		{"path reusing a tree key", gtEditPath(t, alice.g, good.Commit, tag, func(p *UpdatePath) {
			p.Nodes[0].EncryptionKey = bob.g.tree.Leaf(bob.g.OwnLeaf()).EncryptionKey
		}), ErrInvalidCommit},
		{"path leaf with a bad signature", gtEditPath(t, alice.g, good.Commit, nil, func(p *UpdatePath) {
			p.LeafNode.Signature = bytes.Clone(p.LeafNode.Signature)
			p.LeafNode.Signature[0] ^= 1
		}), ErrInvalidLeafNode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := gtMarshal(t, bob.g)
			_, err := bob.g.Process(c.msg)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !bytes.Equal(gtMarshal(t, bob.g), before) {
				t.Fatal("state changed")
			}
		})
	}
	// The untampered commit still applies afterwards.
	alice.g.pending = nil
	if _, err := bob.g.Process(good.Commit); err != nil {
		t.Fatal(err)
	}
}

func gtDummyWelcome(t *testing.T, s *ciphersuite.Suite) []byte {
	return (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome,
		Welcome: &Welcome{CipherSuite: s.ID(), Secrets: []EncryptedGroupSecrets{}, EncryptedGroupInfo: []byte{1}}}).Marshal()
}

func TestOldEpochs(t *testing.T) {
	_, alice, bob, carol := gtThree(t, Config{KeptEpochs: 1})
	old, err := alice.g.Encrypt([]byte("epoch 1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	older, err := alice.g.Encrypt([]byte("epoch 1 again"), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := carol.g.Update()
	gtCommitMerge(t, carol, []*gtMember{alice, bob}, out, err)
	// One past epoch is kept: a late message still decrypts.
	r, err := bob.g.Process(old)
	if err != nil || string(r.Plaintext) != "epoch 1" {
		t.Fatalf("late message: %v", err)
	}
	out, err = carol.g.Update()
	gtCommitMerge(t, carol, []*gtMember{alice, bob}, out, err)
	before := gtMarshal(t, bob.g)
	if _, err := bob.g.Process(older); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("message two epochs old: %v", err)
	}
	if !bytes.Equal(gtMarshal(t, bob.g), before) {
		t.Fatal("state changed")
	}
}

func TestInvalidTreeOnJoin(t *testing.T) {
	s := gtSuite(t, 1)
	ga, err := CreateGroup(s, []byte("g"), NewBasicCredential([]byte("alice")), gtSigKey(t, s), &CreateOptions{Config: Config{OmitRatchetTree: true}})
	if err != nil {
		t.Fatal(err)
	}
	kpB, bB := gtKeyPackage(t, s, "bob")
	out, err := ga.Add(kpB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	tree, err := DecodeRatchetTree(s, ga.RatchetTree())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinFromWelcome(out.Welcome, bB, nil, nil); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("join without a tree: %v", err)
	}
	// Alice's leaf with a changed credential: signature and tree hash break.
	ln := tree.Leaf(0).Clone()
	ln.Credential = NewBasicCredential([]byte("mallory"))
	bad := tree.Clone()
	bad.setNode(0, &Node{Leaf: ln})
	if _, err := JoinFromWelcome(out.Welcome, bB, bad.Marshal(), nil); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("tampered tree: %v", err)
	}
	g, err := JoinFromWelcome(out.Welcome, bB, tree.Marshal(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), ga.EpochAuthenticator()) {
		t.Fatal("epoch authenticators differ")
	}
}

func TestConflictingCommits(t *testing.T) {
	_, alice, bob, carol := gtThree(t, Config{})
	winner, err := alice.g.Update()
	if err != nil {
		t.Fatal(err)
	}
	loser, err := bob.g.Update()
	if err != nil {
		t.Fatal(err)
	}
	// The delivery service accepted alice's commit: it comes back to her.
	r, err := alice.g.Process(winner.Commit)
	if err != nil || !r.Commit.Own {
		t.Fatalf("own commit: %v", err)
	}
	gtDeliver(t, winner.Commit, carol)
	if err := bob.g.DiscardPendingCommit(); err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, winner.Commit, bob)
	// The losing commit is for an epoch that is over.
	before := gtMarshal(t, carol.g)
	if _, err := carol.g.Process(loser.Commit); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("losing commit: %v", err)
	}
	if !bytes.Equal(gtMarshal(t, carol.g), before) {
		t.Fatal("state changed")
	}
	all := []*gtMember{alice, bob, carol}
	gtAgree(t, all...)
	// Bob retries in the new epoch.
	out, err := bob.g.Update()
	gtCommitMerge(t, bob, []*gtMember{alice, carol}, out, err)
	gtAgree(t, all...)
	if _, err := bob.g.MergePendingCommit(); !errors.Is(err, ErrPendingCommit) {
		t.Fatalf("merge without a pending commit: %v", err)
	}
}

// gtEditPath changes the UpdatePath of a PublicMessage commit from g's own
// leaf, re-signs the path's leaf (unless tag is nil) and the content, and
// recomputes the membership tag.
func gtEditPath(t *testing.T, g *Group, msg, tag []byte, edit func(p *UpdatePath)) []byte {
	t.Helper()
	var m MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		t.Fatal(err)
	}
	c := m.PublicMessage.Content
	edit(c.Commit.Path)
	if tag != nil {
		if err := c.Commit.Path.LeafNode.Sign(g.signer, g.ctx.GroupID, g.own); err != nil {
			t.Fatal(err)
		}
	}
	return gtForge(t, g, &c, m.PublicMessage.Auth.ConfirmationTag)
}

// An application message over MaxApplicationData is refused before any
// ratchet key is spent; one at the limit goes through.
func TestEncryptTooLarge(t *testing.T) {
	_, alice, bob, _ := gtThree(t, Config{})
	before := gtMarshal(t, alice.g)
	if _, err := alice.g.Encrypt(make([]byte, MaxApplicationData), []byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Encrypt: %v, want ErrTooLarge", err)
	}
	if !bytes.Equal(before, gtMarshal(t, alice.g)) {
		t.Fatal("a refused Encrypt changed the group state")
	}
	msg, err := alice.g.Encrypt(make([]byte, MaxApplicationData), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := gtDeliver(t, msg, bob)
	if len(r[0].Plaintext) != MaxApplicationData {
		t.Fatalf("bob got %d bytes", len(r[0].Plaintext))
	}
}
