package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleychat/parley/mls/keyschedule"
)

func TestExternalJoin(t *testing.T) {
	s, alice, bob, carol := gtThree(t, Config{})
	gi, err := bob.g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	g, commit, err := JoinExternal(gi, NewBasicCredential([]byte("dave")), gtSigKey(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	dave := &gtMember{"dave", g}
	rs := gtDeliver(t, commit, alice, bob, carol)
	if !rs[0].Commit.External || rs[0].Commit.Committer != dave.g.OwnLeaf() {
		t.Fatalf("external commit result %+v", rs[0].Commit)
	}
	all := []*gtMember{alice, bob, carol, dave}
	gtAgree(t, all...)

	// Carol lost her state and rejoins, removing her old leaf; the tree
	// comes out of band this time.
	gi, err = alice.g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	old := carol.g.OwnLeaf()
	g, commit, err = JoinExternal(gi, NewBasicCredential([]byte("carol")), gtSigKey(t, s),
		&ExternalJoinOptions{RatchetTree: alice.g.tree.Marshal(), RemoveLeaf: &old})
	if err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, commit, alice, bob, dave)
	r, err := carol.g.Process(commit)
	if err != nil || !r.Commit.RemovedSelf {
		t.Fatalf("old carol: %v", err)
	}
	carol = &gtMember{"carol2", g}
	all = []*gtMember{alice, bob, carol, dave}
	gtAgree(t, all...)
	msg, err := carol.g.Encrypt([]byte("back"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, msg, alice, bob, dave)

	// A GroupInfo with a bad signature is refused.
	if gi, err = alice.g.GroupInfo(false); err != nil {
		t.Fatal(err)
	}
	bad := gtRemarshal(t, gi, func(m *MLSMessage) { m.GroupInfo.Signature[0] ^= 1 })
	if _, _, err := JoinExternal(bad, NewBasicCredential([]byte("eve")), gtSigKey(t, s),
		&ExternalJoinOptions{RatchetTree: alice.g.tree.Marshal()}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad group info: %v", err)
	}
}

func TestExternalSenderProposals(t *testing.T) {
	s := gtSuite(t, 1)
	dsKey := gtSigKey(t, s)
	dsSigner, err := s.NewSigner(dsKey)
	if err != nil {
		t.Fatal(err)
	}
	ga, err := CreateGroup(s, []byte("g"), NewBasicCredential([]byte("alice")), gtSigKey(t, s), &CreateOptions{
		ExternalSenders: ExternalSenders{{SignatureKey: dsSigner.Public(), Credential: NewBasicCredential([]byte("ds"))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice := &gtMember{"alice", ga}
	kpB, bB := gtKeyPackage(t, s, "bob")
	out, err := alice.g.Add(kpB)
	gtCommitMerge(t, alice, nil, out, err)
	bob := gtJoin(t, "bob", out.Welcome, bB)

	prop, err := NewExternalProposal(s, []byte("g"), alice.g.Epoch(), 0, dsKey,
		&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: bob.g.OwnLeaf()}})
	if err != nil {
		t.Fatal(err)
	}
	rs := gtDeliver(t, prop, alice, bob)
	if rs[0].Kind != ResultProposal || string(rs[0].Credential.Identity) != "ds" {
		t.Fatalf("external proposal result %+v", rs[0])
	}
	out, err = alice.g.Commit(CommitOptions{IncludeReceived: true})
	gtCommitMerge(t, alice, nil, out, err)
	r, err := bob.g.Process(out.Commit)
	if err != nil || !r.Commit.RemovedSelf {
		t.Fatalf("bob: %v", err)
	}
	// An unknown external sender index is refused.
	prop, err = NewExternalProposal(s, []byte("g"), alice.g.Epoch(), 3, dsKey,
		&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Process(prop); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("unknown external sender: %v", err)
	}
}

func TestPSKsReInitAndExtensions(t *testing.T) {
	psk := map[string][]byte{"shared": bytes.Repeat([]byte{7}, 32)}
	lookup := func(id []byte) ([]byte, bool) { v, ok := psk[string(id)]; return v, ok }
	s, alice, bob, carol := gtThree(t, Config{PSKLookup: lookup})
	all := []*gtMember{alice, bob, carol}

	// A resumption PSK, then an external PSK with a new member who needs it.
	kpD, bD := gtKeyPackage(t, s, "dave")
	out, err := alice.g.Commit(CommitOptions{ResumptionPSKEpochs: []uint64{alice.g.Epoch()}})
	gtCommitMerge(t, alice, []*gtMember{bob, carol}, out, err)
	gtAgree(t, all...)
	out, err = alice.g.Commit(CommitOptions{Adds: [][]byte{kpD}, ExternalPSKs: [][]byte{[]byte("shared")}})
	gtCommitMerge(t, alice, []*gtMember{bob, carol}, out, err)
	if _, err := JoinFromWelcome(out.Welcome, bD, nil, nil); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("join without the PSK: %v", err)
	}
	g, err := JoinFromWelcome(out.Welcome, bD, nil, &Config{PSKLookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	dave := &gtMember{"dave", g}
	all = append(all, dave)
	gtAgree(t, all...)

	// A member without the PSK cannot follow, and is left unchanged.
	out, err = bob.g.Commit(CommitOptions{ExternalPSKs: [][]byte{[]byte("shared")}})
	if err != nil {
		t.Fatal(err)
	}
	carol.g.SetPSKLookup(nil)
	before := gtMarshal(t, carol.g)
	if _, err := carol.g.Process(out.Commit); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("missing PSK: %v", err)
	}
	if !bytes.Equal(before, gtMarshal(t, carol.g)) {
		t.Fatal("state changed")
	}
	carol.g.SetPSKLookup(lookup)
	gtCommitMerge(t, bob, []*gtMember{alice, carol, dave}, out, nil)
	gtAgree(t, all...)

	// Group context extensions: require a capability everyone has.
	rc := &RequiredCapabilities{CredentialTypes: []CredentialType{CredentialTypeBasic}}
	out, err = carol.g.Commit(CommitOptions{GroupContextExtensions: Extensions{rc.Extension()}})
	gtCommitMerge(t, carol, []*gtMember{alice, bob, dave}, out, err)
	gtAgree(t, all...)
	if _, ok, _ := dave.g.GroupContext().Extensions.RequiredCapabilities(); !ok {
		t.Fatal("required_capabilities not applied")
	}

	// ReInit to suite 3: the group is then frozen.
	out, err = dave.g.Commit(CommitOptions{ReInit: &ReInit{GroupID: []byte("g2"), Version: ProtocolVersionMLS10,
		CipherSuite: 3, Extensions: Extensions{}}})
	gtCommitMerge(t, dave, []*gtMember{alice, bob, carol}, out, err)
	for _, m := range all {
		if _, ok := m.g.PendingReInit(); !ok {
			t.Fatalf("%s: reinit not pending", m.name)
		}
		if _, err := m.g.Encrypt([]byte("x"), nil); err == nil {
			t.Fatalf("%s: group usable after reinit", m.name)
		}
	}
	// Dave starts the successor group; the others join it with their old
	// group's resumption PSK.
	s3 := gtSuite(t, 3)
	var kps [][]byte
	var bundles []*KeyPackageBundle
	for _, name := range []string{"alice", "bob", "carol"} {
		kp, b := gtKeyPackage(t, s3, name)
		kps, bundles = append(kps, kp), append(bundles, b)
	}
	ng, out, err := dave.g.ReInitGroup(kps, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ng.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	next := []*gtMember{{"dave", ng}}
	for i, m := range []*gtMember{alice, bob, carol} {
		if _, err := JoinFromWelcome(out.Welcome, bundles[i], nil, nil); !errors.Is(err, ErrUnknownPSK) {
			t.Fatalf("%s joined without the old group's PSK: %v", m.name, err)
		}
		old := m.g
		g, err := JoinFromWelcome(out.Welcome, bundles[i], nil, &Config{
			ResumptionPSKLookup: func(id []byte, epoch uint64) ([]byte, bool) {
				if !bytes.Equal(id, old.GroupID()) {
					return nil, false
				}
				return old.ResumptionPSK(epoch)
			}})
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		next = append(next, &gtMember{m.name, g})
	}
	gtAgree(t, next...)
	if ng.Suite().ID() != 3 || string(ng.GroupID()) != "g2" {
		t.Fatal("successor group has the wrong parameters")
	}
}

func TestPersistenceWithPendingCommit(t *testing.T) {
	s, alice, bob, _ := gtThree(t, Config{PaddingBlock: 64, KeptEpochs: 2})
	kpD, bD := gtKeyPackage(t, s, "dave")
	if _, _, err := bob.g.ProposeAdd(kpD); err != nil {
		t.Fatal(err)
	}
	out, err := alice.g.Add(kpD)
	if err != nil {
		t.Fatal(err)
	}
	state := gtMarshal(t, alice.g)
	g, err := UnmarshalGroup(state)
	if err != nil {
		t.Fatal(err)
	}
	if !g.HasPendingCommit() || !bytes.Equal(gtMarshal(t, g), state) {
		t.Fatal("pending commit lost")
	}
	// The restored group merges its commit when it comes back.
	if r, err := g.Process(out.Commit); err != nil || !r.Commit.Own {
		t.Fatalf("own commit after restore: %v", err)
	}
	if _, err := JoinFromWelcome(out.Welcome, bD, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Bad versions and truncations are rejected.
	for _, bad := range [][]byte{nil, {2}, state[:len(state)/2], append(bytes.Clone(state), 0)} {
		if _, err := UnmarshalGroup(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("bad state accepted: %v", err)
		}
	}
	// Bundles round-trip.
	var b2 KeyPackageBundle
	enc, _ := bD.MarshalBinary()
	if err := b2.UnmarshalBinary(enc); err != nil || !bytes.Equal(b2.InitPriv, bD.InitPriv) {
		t.Fatalf("bundle: %v", err)
	}
}

func FuzzUnmarshalGroup(f *testing.F) {
	s := gtSuite(f, 1)
	g, err := CreateGroup(s, []byte("g"), NewBasicCredential([]byte("a")), gtSigKey(f, s), nil)
	if err != nil {
		f.Fatal(err)
	}
	kp, _ := gtKeyPackage(f, s, "b")
	if _, err := g.Add(kp); err != nil {
		f.Fatal(err)
	}
	f.Add(gtMarshal(f, g))
	if _, err := g.MergePendingCommit(); err != nil {
		f.Fatal(err)
	}
	f.Add(gtMarshal(f, g))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalGroup(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalGroup(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

func TestUpdateProposal(t *testing.T) {
	_, alice, bob, carol := gtThree(t, Config{})
	all := []*gtMember{alice, bob, carol}
	prop, _, err := bob.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	// The pending update key survives persistence.
	g, err := UnmarshalGroup(gtMarshal(t, bob.g))
	if err != nil {
		t.Fatal(err)
	}
	bob.g = g
	gtDeliver(t, prop, alice, carol)
	out, err := alice.g.Commit(CommitOptions{IncludeReceived: true})
	gtCommitMerge(t, alice, []*gtMember{bob, carol}, out, err)
	gtAgree(t, all...)
	// Bob's own commit cannot carry his update, and others can still
	// encrypt to his new leaf.
	out, err = carol.g.Update()
	gtCommitMerge(t, carol, []*gtMember{alice, bob}, out, err)
	gtAgree(t, all...)
	msg, err := bob.g.Encrypt([]byte("updated"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gtDeliver(t, msg, alice, carol)
}

func TestOwnMessagesComeBack(t *testing.T) {
	for _, public := range []bool{false, true} {
		_, alice, bob, _ := gtThree(t, Config{PublicHandshake: public})
		msg, _, err := alice.g.ProposeRemove(bob.g.OwnLeaf())
		if err != nil {
			t.Fatal(err)
		}
		before := gtMarshal(t, alice.g)
		if _, err := alice.g.Process(msg); !errors.Is(err, ErrReplay) {
			t.Fatalf("own proposal (public %v): %v", public, err)
		}
		if !bytes.Equal(before, gtMarshal(t, alice.g)) {
			t.Fatal("state changed")
		}
	}
}

// FuzzProcess feeds arbitrary messages to a member: no panics, and on
// error the state is unchanged.
func FuzzProcess(f *testing.F) {
	s := gtSuite(f, 1)
	ga, err := CreateGroup(s, []byte("g"), NewBasicCredential([]byte("a")), gtSigKey(f, s), nil)
	if err != nil {
		f.Fatal(err)
	}
	kp, b := gtKeyPackage(f, s, "b")
	out, err := ga.Add(kp)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ga.MergePendingCommit(); err != nil {
		f.Fatal(err)
	}
	gb, err := JoinFromWelcome(out.Welcome, b, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	state := gtMarshal(f, gb)
	app, _ := ga.Encrypt([]byte("hello"), []byte("ad"))
	prop, _, _ := ga.ProposeRemove(1)
	ga.cfg.PublicHandshake = true
	upd, _ := ga.Update()
	f.Add(app)
	f.Add(prop)
	f.Add(upd.Commit)
	f.Add(out.Welcome)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalGroup(state)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Process(data); err != nil && !bytes.Equal(gtMarshal(t, g), state) {
			t.Fatalf("state changed on error %v", err)
		}
	})
}

// FuzzJoinFromWelcome feeds arbitrary Welcome bytes to the joiner: no
// panic, and any Welcome it accepts puts it in alice's group as alice sees
// it (same group id, epoch and epoch authenticator): a Welcome cannot be
// altered into another group.
func FuzzJoinFromWelcome(f *testing.F) {
	s := gtSuite(f, 1)
	ga, err := CreateGroup(s, []byte("g"), NewBasicCredential([]byte("a")), gtSigKey(f, s), nil)
	if err != nil {
		f.Fatal(err)
	}
	kp, b := gtKeyPackage(f, s, "b")
	out, err := ga.Add(kp)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ga.MergePendingCommit(); err != nil {
		f.Fatal(err)
	}
	f.Add(out.Welcome)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := JoinFromWelcome(data, b, nil, nil)
		if err != nil {
			return
		}
		if !bytes.Equal(g.GroupID(), ga.GroupID()) || g.Epoch() != ga.Epoch() || !bytes.Equal(g.EpochAuthenticator(), ga.EpochAuthenticator()) {
			t.Fatalf("joined group %x epoch %d, alice's is %x epoch %d, or their epoch authenticators differ", g.GroupID(), g.Epoch(), ga.GroupID(), ga.Epoch())
		}
	})
}

func TestOldEpochSecretsWiped(t *testing.T) {
	_, alice, bob, _ := gtThree(t, Config{})
	oldAlice, oldBob := alice.g.ks, bob.g.ks
	init := bytes.Clone(oldBob.InitSecret)
	out, err := alice.g.Update()
	if err != nil {
		t.Fatal(err)
	}
	gtCommitMerge(t, alice, []*gtMember{bob}, out, nil)
	for _, ks := range []*keyschedule.Epoch{oldAlice, oldBob} {
		if ks.InitSecret != nil || ks.ExporterSecret != nil || ks.MembershipKey != nil {
			t.Fatal("old epoch secrets kept")
		}
	}
	if bytes.Equal(bob.g.ks.InitSecret, init) {
		t.Fatal("init secret not replaced")
	}
	// What late application messages need is kept.
	if bob.g.past[0].senderDataSecret == nil || bob.g.resumption[0].secret == nil {
		t.Fatal("past epoch lost its sender data or resumption secret")
	}
}

func TestCommitReceivedProposalsFilters(t *testing.T) {
	s, alice, bob, carol := gtThree(t, Config{PublicHandshake: true})
	kpD, bD := gtKeyPackage(t, s, "dave")
	// Bob proposes an update and removing alice; carol proposes removing
	// bob and adding dave; alice proposes her own update.
	upd, _, err := bob.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	rmA, _, err := bob.g.ProposeRemove(alice.g.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	rmB, _, err := carol.g.ProposeRemove(bob.g.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	addD, _, err := carol.g.ProposeAdd(kpD)
	if err != nil {
		t.Fatal(err)
	}
	ownUpd, _, err := alice.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{upd, rmA, rmB, addD} {
		gtDeliver(t, m, alice)
	}
	// A duplicate delivery is refused without a second cache entry.
	if _, err := alice.g.Process(rmB); !errors.Is(err, ErrReplay) {
		t.Fatalf("duplicate proposal: %v", err)
	}
	for _, m := range [][]byte{upd, rmA, ownUpd} {
		gtDeliver(t, m, carol)
	}
	out, err := alice.g.Commit(CommitOptions{IncludeReceived: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := alice.g.MergePendingCommit()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Removed) != 1 || r.Removed[0] != 1 || len(r.Added) != 1 || len(r.Updated) != 0 {
		t.Fatalf("commit result %+v", r)
	}
	gtDeliver(t, out.Commit, carol)
	dave := gtJoin(t, "dave", out.Welcome, bD)
	gtAgree(t, alice, carol, dave)
}

func TestSoleMember(t *testing.T) {
	s := gtSuite(t, 1)
	g, err := CreateGroup(s, []byte("solo"), NewBasicCredential([]byte("alice")), gtSigKey(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := g.EpochAuthenticator()
	if _, err := g.Update(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	if g.Epoch() != 1 || bytes.Equal(before, g.EpochAuthenticator()) {
		t.Fatal("epoch did not advance")
	}
	// Add and remove a member, then carry on alone.
	kp, b := gtKeyPackage(t, s, "bob")
	out, err := g.Add(kp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	bob := gtJoin(t, "bob", out.Welcome, b)
	out, err = g.Remove(bob.g.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	if len(g.Members()) != 1 || g.tree.NumLeaves() != 1 {
		t.Fatalf("%d members, %d leaves", len(g.Members()), g.tree.NumLeaves())
	}
	if r, err := bob.g.Process(out.Commit); err != nil || !r.Commit.RemovedSelf {
		t.Fatalf("bob: %v", err)
	}
}

func TestJoinProposal(t *testing.T) {
	s, alice, bob, _ := gtThree(t, Config{})
	_, bD := gtKeyPackage(t, s, "dave")
	prop, err := NewJoinProposal(alice.g.GroupID(), alice.g.Epoch(), bD)
	if err != nil {
		t.Fatal(err)
	}
	rs := gtDeliver(t, prop, alice, bob)
	if rs[0].Sender.Type != SenderTypeNewMemberProposal || string(rs[0].Credential.Identity) != "dave" {
		t.Fatalf("result %+v", rs[0])
	}
	// A tampered signature is refused.
	bad := gtRemarshal(t, prop, func(m *MLSMessage) { m.PublicMessage.Auth.Signature[0] ^= 1 })
	if _, err := bob.g.Process(bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered join proposal: %v", err)
	}
	out, err := alice.g.Commit(CommitOptions{IncludeReceived: true})
	gtCommitMerge(t, alice, []*gtMember{bob}, out, err)
	dave := gtJoin(t, "dave", out.Welcome, bD)
	gtAgree(t, alice, bob, dave)
}

func TestMessagesWhileCommitPending(t *testing.T) {
	_, alice, bob, _ := gtThree(t, Config{})
	out, err := alice.g.Update()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := bob.g.Encrypt([]byte("still epoch 1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := alice.g.Process(msg); err != nil || string(r.Plaintext) != "still epoch 1" {
		t.Fatalf("message while pending: %v", err)
	}
	if r, err := alice.g.Process(out.Commit); err != nil || !r.Commit.Own {
		t.Fatalf("own commit: %v", err)
	}
	// The key used while the commit was pending stays consumed.
	if _, err := alice.g.Process(msg); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay across the merge: %v", err)
	}
	gtDeliver(t, out.Commit, bob)
	gtAgree(t, alice, bob)
}
