package mls_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// The property test drives one group through a random sequence of adds,
// removes, updates and application messages. Flags make it bigger:
//
//	go test ./mls -run TestGroupProperties -mls.prop.seed=42 -mls.prop.steps=2000 -mls.prop.members=50
var (
	propSeed    = flag.Uint64("mls.prop.seed", 0, "seed of TestGroupProperties (0: from the clock; the seed used is logged)")
	propSteps   = flag.Int("mls.prop.steps", 100, "operations per run of TestGroupProperties")
	propMembers = flag.Int("mls.prop.members", 50, "most members TestGroupProperties lets the group grow to")
	propSuites  = flag.String("mls.prop.suites", "1,2,3", "cipher suites TestGroupProperties runs, comma separated")
)

// simMember is one simulated client.
type simMember struct {
	name  string
	group *mls.Group
}

// simulation is the whole group as seen by every current member, plus the
// clients that were removed (kept to check they are shut out).
type simulation struct {
	t       *testing.T
	suite   *ciphersuite.Suite
	rng     *rand.Rand
	members []*simMember
	removed []*simMember
	nextID  int
	// counts of operations performed, for the log.
	adds, removes, updates, messages int
}

func (s *simulation) newKeyPackage() (string, []byte, *mls.KeyPackageBundle) {
	s.t.Helper()
	name := fmt.Sprintf("member-%d", s.nextID)
	s.nextID++
	_, sigPriv, err := s.suite.GenerateSigner(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	kp, bundle, err := mls.NewKeyPackage(s.suite, mls.NewBasicCredential([]byte(name)), sigPriv, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return name, kp, bundle
}

// pick returns a random current member.
func (s *simulation) pick() *simMember { return s.members[s.rng.IntN(len(s.members))] }

// applyCommit has the committer merge its commit and every other member
// process it, then checks that all members agree on the new epoch.
func (s *simulation) applyCommit(committer *simMember, out *mls.CommitOutput, what string) {
	s.t.Helper()
	if _, err := committer.group.MergePendingCommit(); err != nil {
		s.t.Fatalf("%s: %s merges its commit: %v", what, committer.name, err)
	}
	var stay []*simMember
	for _, m := range s.members {
		if m != committer {
			res, err := m.group.Process(out.Commit)
			if err != nil {
				s.t.Fatalf("%s: %s processes the commit: %v", what, m.name, err)
			}
			if res.Kind != mls.ResultCommit {
				s.t.Fatalf("%s: %s: result kind %d, want a commit", what, m.name, res.Kind)
			}
			if res.Commit.RemovedSelf {
				if !m.group.Removed() {
					s.t.Fatalf("%s: %s was told it was removed but Removed() is false", what, m.name)
				}
				s.removed = append(s.removed, m)
				continue
			}
		}
		stay = append(stay, m)
	}
	s.members = stay
}

// checkAgreement requires every member to share epoch, tree hash, epoch
// authenticator and exporter output, and the membership to match.
func (s *simulation) checkAgreement(what string) {
	s.t.Helper()
	ref := s.members[0].group
	exp, err := ref.Export("property test", []byte(what), 32)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, m := range s.members[1:] {
		g := m.group
		if g.Epoch() != ref.Epoch() {
			s.t.Fatalf("%s: %s is in epoch %d, %s in %d", what, m.name, g.Epoch(), s.members[0].name, ref.Epoch())
		}
		if !bytes.Equal(g.TreeHash(), ref.TreeHash()) {
			s.t.Fatalf("%s: %s's tree hash differs from %s's", what, m.name, s.members[0].name)
		}
		if !bytes.Equal(g.EpochAuthenticator(), ref.EpochAuthenticator()) {
			s.t.Fatalf("%s: %s's epoch authenticator differs from %s's", what, m.name, s.members[0].name)
		}
		got, err := g.Export("property test", []byte(what), 32)
		if err != nil {
			s.t.Fatal(err)
		}
		if !bytes.Equal(got, exp) {
			s.t.Fatalf("%s: %s's exporter output differs from %s's", what, m.name, s.members[0].name)
		}
	}
	if n := len(ref.Members()); n != len(s.members) {
		s.t.Fatalf("%s: the group lists %d members, the simulation has %d", what, n, len(s.members))
	}
	for _, m := range s.members {
		if leaf, ok := ref.Member(m.group.OwnLeaf()); !ok || string(leaf.Credential.Identity) != m.name {
			s.t.Fatalf("%s: leaf %d is not %s in %s's view", what, m.group.OwnLeaf(), m.name, s.members[0].name)
		}
	}
}

func (s *simulation) add(max int) {
	s.t.Helper()
	committer := s.pick()
	n := 1 + s.rng.IntN(3)
	n = min(n, max-len(s.members))
	var kps [][]byte
	var names []string
	var bundles []*mls.KeyPackageBundle
	for range n {
		name, kp, b := s.newKeyPackage()
		kps, names, bundles = append(kps, kp), append(names, name), append(bundles, b)
	}
	out, err := committer.group.Add(kps...)
	if err != nil {
		s.t.Fatalf("%s adds %v: %v", committer.name, names, err)
	}
	if out.Welcome == nil {
		s.t.Fatal("an Add commit came without a Welcome")
	}
	what := fmt.Sprintf("%s adds %v", committer.name, names)
	s.applyCommit(committer, out, what)
	for i, b := range bundles {
		g, err := mls.JoinFromWelcome(out.Welcome, b, nil, nil)
		if err != nil {
			s.t.Fatalf("%s: %s joins: %v", what, names[i], err)
		}
		s.members = append(s.members, &simMember{name: names[i], group: g})
	}
	s.adds += n
	s.checkAgreement(what)
}

func (s *simulation) remove() {
	s.t.Helper()
	committer := s.pick()
	var leaves []uint32
	var names []string
	for _, i := range s.rng.Perm(len(s.members))[:1+s.rng.IntN(min(2, len(s.members)-1))] {
		m := s.members[i]
		if m == committer {
			continue
		}
		leaves, names = append(leaves, m.group.OwnLeaf()), append(names, m.name)
	}
	if len(leaves) == 0 {
		return
	}
	out, err := committer.group.Remove(leaves...)
	if err != nil {
		s.t.Fatalf("%s removes %v: %v", committer.name, names, err)
	}
	what := fmt.Sprintf("%s removes %v", committer.name, names)
	before := len(s.removed)
	s.applyCommit(committer, out, what)
	if got := len(s.removed) - before; got != len(leaves) {
		s.t.Fatalf("%s: %d members learned they were removed, want %d", what, got, len(leaves))
	}
	s.removes += len(leaves)
	s.checkAgreement(what)
}

func (s *simulation) update() {
	s.t.Helper()
	committer := s.pick()
	out, err := committer.group.Update()
	if err != nil {
		s.t.Fatalf("%s updates: %v", committer.name, err)
	}
	what := committer.name + " updates"
	s.applyCommit(committer, out, what)
	s.updates++
	s.checkAgreement(what)
}

// message has a random member send an application message that every
// other member decrypts and no removed client can.
func (s *simulation) message(step int) {
	s.t.Helper()
	sender := s.pick()
	pt := fmt.Appendf(nil, "step %d from %s", step, sender.name)
	ad := []byte{byte(step)}
	ct, err := sender.group.Encrypt(pt, ad)
	if err != nil {
		s.t.Fatalf("%s encrypts: %v", sender.name, err)
	}
	for _, m := range s.members {
		if m == sender {
			continue
		}
		res, err := m.group.Process(ct)
		if err != nil {
			s.t.Fatalf("%s decrypts %s's message: %v", m.name, sender.name, err)
		}
		if res.Kind != mls.ResultApplication || !bytes.Equal(res.Plaintext, pt) || !bytes.Equal(res.AuthenticatedData, ad) {
			s.t.Fatalf("%s decrypted %s's message wrongly", m.name, sender.name)
		}
		if res.SenderLeaf != sender.group.OwnLeaf() {
			s.t.Fatalf("%s: sender leaf %d, want %d", m.name, res.SenderLeaf, sender.group.OwnLeaf())
		}
	}
	for _, r := range s.removed {
		res, err := r.group.Process(ct)
		if err == nil {
			s.t.Fatalf("removed %s decrypted a later message (kind %d)", r.name, res.Kind)
		}
		if !errors.Is(err, mls.ErrRemoved) && !errors.Is(err, mls.ErrWrongEpoch) {
			s.t.Fatalf("removed %s: error %v, want ErrRemoved or ErrWrongEpoch", r.name, err)
		}
	}
	s.messages++
}

// TestGroupProperties runs random operation sequences and checks after
// every commit that all members agree on the group's state, and after every
// message that members decrypt it and removed clients cannot.
func TestGroupProperties(t *testing.T) {
	seed := *propSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -mls.prop.seed=%d)", seed, seed)
	var suites []ciphersuite.ID
	for _, f := range bytes.Split([]byte(*propSuites), []byte(",")) {
		var id uint16
		if _, err := fmt.Sscan(string(f), &id); err != nil {
			t.Fatalf("-mls.prop.suites: %v", err)
		}
		suites = append(suites, ciphersuite.ID(id))
	}
	for i, id := range suites {
		suite, err := ciphersuite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(suite.String(), func(t *testing.T) {
			runProperties(t, suite, seed+uint64(i), *propSteps, *propMembers)
		})
	}
}

func runProperties(t *testing.T, suite *ciphersuite.Suite, seed uint64, steps, maxMembers int) {
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	}()
	s := &simulation{t: t, suite: suite, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	name, _, _ := s.newKeyPackage()
	_, sigPriv, err := suite.GenerateSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup(suite, []byte("property group"), mls.NewBasicCredential([]byte(name)), sigPriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.members = []*simMember{{name: name, group: g}}
	for step := range steps {
		switch r := s.rng.IntN(10); {
		case len(s.members) < 2 || (r < 3 && len(s.members) < maxMembers):
			s.add(maxMembers)
		case r < 5 && len(s.members) > 2:
			s.remove()
		case r < 7:
			s.update()
		default:
			s.message(step)
		}
	}
	t.Logf("%d steps: %d added, %d removed, %d updates, %d messages; %d members at epoch %d",
		steps, s.adds, s.removes, s.updates, s.messages, len(s.members), s.members[0].group.Epoch())
}
