package directory

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
)

// server is a directory with the storage a real server would keep: every
// update by (label, epoch), and every epoch's record and changes.
type server struct {
	t       testing.TB
	dir     *Directory
	cfg     Config
	vkey    string
	updates map[string][]Update // label → versions, oldest first
	records [][]byte
	changes []Changes
	now     time.Time
}

var t0 = time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)

func newServer(t testing.TB, witnesses ...note.Verifier) *server {
	t.Helper()
	skey, vkey, err := GenerateNoteKey(rand.Reader, "parley.test/kt")
	if err != nil {
		t.Fatal(err)
	}
	signer, vkey2, err := NewNoteKey(skey)
	if err != nil || vkey2 != vkey {
		t.Fatalf("NewNoteKey: %v, %q != %q", err, vkey2, vkey)
	}
	vk, err := vrf.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Origin: "parley.test/kt", Signer: signer, VRF: vk, Witnesses: witnesses}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &server{t: t, dir: d, cfg: cfg, vkey: vkey, updates: map[string][]Update{}, now: t0}
}

// epoch publishes one epoch of changes, "label=value" sets the next
// version, "label=" removes the label.
func (s *server) epoch(changes ...string) *Epoch {
	s.t.Helper()
	var cs []Change
	for _, c := range changes {
		label, value, _ := bytes.Cut([]byte(c), []byte("="))
		ch := Change{Label: string(label)}
		if len(value) > 0 {
			v, _ := s.dir.Version(ch.Label)
			ch.Version, ch.Value = v+1, value
		}
		cs = append(cs, ch)
	}
	s.now = s.now.Add(time.Second)
	e, err := s.dir.Prepare(rand.Reader, s.now, cs)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.dir.Commit(e); err != nil {
		s.t.Fatal(err)
	}
	for _, u := range e.Updates {
		s.updates[u.Label] = append(s.updates[u.Label], u)
	}
	for _, r := range e.Removals {
		delete(s.updates, r.Label)
	}
	s.records = append(s.records, e.Record)
	s.changes = append(s.changes, e.Changes())
	return e
}

func opening(u Update, epoch uint64) *Opening {
	return &Opening{Epoch: epoch, Prev: u.Prev, Version: u.Version, Opening: u.Opening, Value: u.Value}
}

// epochOf finds the epoch an update was published in.
func (s *server) epochOf(label string, version uint32) uint64 {
	for n, c := range s.changes {
		for _, u := range c.Updates {
			for _, x := range s.updates[label] {
				if x.Version == version && x.Index == u.Index && x.Commitment == u.Commitment {
					return uint64(n)
				}
			}
		}
	}
	s.t.Fatalf("no epoch for %s v%d", label, version)
	return 0
}

func (s *server) search(label string, known int64) *Answer {
	s.t.Helper()
	l, err := s.dir.Search(label, known)
	if err != nil {
		s.t.Fatal(err)
	}
	a := &Answer{Lookup: *l}
	if l.Found {
		us := s.updates[label]
		u := us[len(us)-1]
		a.Current = opening(u, l.Epoch)
	}
	return a
}

// history returns the versions of label after epoch since.
func (s *server) history(label string, since uint64, first bool) []Opening {
	var out []Opening
	for _, u := range s.updates[label] {
		e := s.epochOf(label, u.Version)
		if first || e > since {
			out = append(out, *opening(u, e))
		}
	}
	return out
}

func (s *server) keys(t testing.TB, witnesses ...note.Verifier) Keys {
	v, err := note.NewVerifier(s.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return Keys{Policy: log.Policy{Origin: s.cfg.Origin, Log: v, Witnesses: witnesses, Quorum: len(witnesses)},
		VRF: s.cfg.VRF.Public(), MaxAhead: time.Minute, MaxBehind: time.Hour}
}

func newVerifier(t *testing.T, k Keys) *log.Verifier {
	v, err := log.NewVerifier(k.Policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func known(v *log.Verifier) int64 {
	if l := v.Latest(); l != nil {
		return l.Size
	}
	return 0
}

func TestSearchAndMonitor(t *testing.T) {
	s := newServer(t)
	s.epoch("alice=A1", "bob=B1")
	keys := s.keys(t)
	bob := newVerifier(t, keys)
	r, err := VerifySearch(bob, keys, "alice", s.search("alice", 0), s.now)
	if err != nil || !r.Found || string(r.Current.Value) != "A1" {
		t.Fatalf("search alice: %v %+v", err, r)
	}
	r, err = VerifySearch(bob, keys, "carol", s.search("carol", known(bob)), s.now)
	if err != nil || r.Found {
		t.Fatalf("search carol (absent): %v %+v", err, r)
	}

	// alice monitors from the start, then after two more versions and
	// epochs in which only others changed.
	alice := newVerifier(t, keys)
	r, err = VerifyHistory(alice, keys, "alice", Known{}, s.search("alice", 0), s.history("alice", 0, true), s.now)
	if err != nil {
		t.Fatal(err)
	}
	k := Known{Leaf: r.Leaf, Epoch: r.Current.Epoch}
	s.epoch("alice=A2")
	s.epoch("bob=B2")
	s.epoch("alice=A3", "carol=C1")
	s.epoch()
	r, err = VerifyHistory(alice, keys, "alice", k, s.search("alice", known(alice)), s.history("alice", k.Epoch, false), s.now)
	if err != nil || string(r.Current.Value) != "A3" {
		t.Fatalf("history: %v", err)
	}
	k = Known{Leaf: r.Leaf, Epoch: r.Current.Epoch}
	// Nothing changed for alice: no versions, one proof.
	s.epoch("bob=B3")
	if _, err := VerifyHistory(alice, keys, "alice", k, s.search("alice", known(alice)), nil, s.now); err != nil {
		t.Fatal(err)
	}
	// Removal.
	s.epoch("carol=")
	if r, err := VerifySearch(bob, keys, "carol", s.search("carol", known(bob)), s.now); err != nil || r.Found {
		t.Fatalf("carol removed: %v %+v", err, r)
	}

	// An auditor follows every epoch and cosigns the latest.
	a := NewAuditor(keys.Policy)
	for n := range s.records {
		if err := a.Apply(s.records[n], s.changes[n]); err != nil {
			t.Fatalf("audit epoch %d: %v", n, err)
		}
	}
	wskey, wvkey, _ := GenerateNoteKey(rand.Reader, "auditor.test")
	ws, _ := note.NewSigner(wskey)
	wv, _ := note.NewVerifier(wvkey)
	cosigned, err := a.Cosign(s.dir.Latest(), ws)
	if err != nil {
		t.Fatal(err)
	}
	wkeys := s.keys(t, wv)
	if _, err := log.OpenCheckpoint(cosigned, wkeys.Policy); err != nil {
		t.Fatalf("cosigned checkpoint under a policy requiring the auditor: %v", err)
	}
	if _, err := log.OpenCheckpoint(s.dir.Latest(), wkeys.Policy); !errors.Is(err, log.ErrQuorum) {
		t.Fatalf("uncosigned checkpoint under that policy: %v", err)
	}
}

func TestRestore(t *testing.T) {
	s := newServer(t)
	s.epoch("alice=A1", "bob=B1")
	s.epoch("alice=A2", "carol=C1")
	s.epoch("bob=")
	var labels []StoredLabel
	for label, us := range s.updates {
		u := us[len(us)-1]
		labels = append(labels, StoredLabel{Label: label, Index: u.Index, VRFProof: u.VRFProof, Value: u.Leaf, Epoch: s.epochOf(label, u.Version), Version: u.Version})
	}
	pub, _ := s.dir.Published()
	d, err := Restore(s.cfg, s.records, labels, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Published(); !bytes.Equal(got, pub) || d.Len() != 2 {
		t.Fatalf("restored: %d labels, checkpoint %q", d.Len(), got)
	}
	s.dir = d
	s.epoch("alice=A3")
	keys := s.keys(t)
	if r, err := VerifySearch(newVerifier(t, keys), keys, "alice", s.search("alice", 0), s.now); err != nil || string(r.Current.Value) != "A3" {
		t.Fatalf("after restore: %v", err)
	}
	// Storage that does not match the log: refused.
	labels[0].Value[0] ^= 1
	if _, err := Restore(s.cfg, s.records[:3], labels, pub); err == nil {
		t.Fatal("restored from labels that do not give the log's root")
	}
}

// The attacks: each answer is the honest one with one lie in it.
func TestLiesAreCaught(t *testing.T) {
	s := newServer(t)
	s.epoch("alice=A1", "bob=B1")
	keys := s.keys(t)
	honest := func() *Answer { return s.search("alice", 0) }
	for _, tc := range []struct {
		name string
		lie  func(a *Answer)
		want error
	}{
		{"another label's VRF proof", func(a *Answer) { a.VRFProof = s.search("bob", 0).VRFProof }, ErrProof},
		{"ghost value", func(a *Answer) { a.Current.Value = []byte("ghost") }, ErrProof},
		{"other version number", func(a *Answer) { a.Current.Version = 7 }, ErrProof},
		{"wrong opening", func(a *Answer) { a.Current.Opening[0] ^= 1 }, ErrProof},
		{"absent though present", func(a *Answer) { a.Current = nil }, ErrProof},
		{"bob's leaf", func(a *Answer) { b := s.search("bob", 0); a.Current, a.Proof = b.Current, b.Proof }, ErrProof},
		{"entry of another tree", func(a *Answer) { a.Record[20] ^= 1 }, ErrProof},
		{"future epoch", func(a *Answer) { a.Current.Epoch = 5 }, ErrProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := honest()
			tc.lie(a)
			if _, err := VerifySearch(newVerifier(t, keys), keys, "alice", a, s.now); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("stale epoch", func(t *testing.T) {
		if _, err := VerifySearch(newVerifier(t, keys), keys, "alice", honest(), s.now.Add(2*time.Hour)); !errors.Is(err, ErrStaleEpoch) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("epoch from the future", func(t *testing.T) {
		if _, err := VerifySearch(newVerifier(t, keys), keys, "alice", honest(), s.now.Add(-time.Hour)); !errors.Is(err, ErrFutureEpoch) {
			t.Fatalf("got %v", err)
		}
	})
}

// A split view: the server keeps a second directory in which alice has a
// ghost list and shows it to bob only. Bob's client accepts that view
// first; every honest checkpoint after it is then a fork to bob, and
// alice's view is one to the fork, so comparing them (or any witness)
// exposes it. And a rollback is refused.
func TestSplitViewAndRollback(t *testing.T) {
	honest := newServer(t)
	forked := &server{t: t, cfg: honest.cfg, vkey: honest.vkey, updates: map[string][]Update{}, now: t0}
	var err error
	if forked.dir, err = New(honest.cfg); err != nil {
		t.Fatal(err)
	}
	honest.epoch("alice=A1", "bob=B1")
	forked.epoch("alice=ghost", "bob=B1")
	keys := honest.keys(t)
	bob, alice := newVerifier(t, keys), newVerifier(t, keys)
	r, err := VerifySearch(bob, keys, "alice", forked.search("alice", 0), forked.now)
	if err != nil || string(r.Current.Value) != "ghost" {
		t.Fatalf("bob's forked view: %v", err)
	}
	if _, err := VerifySearch(alice, keys, "alice", honest.search("alice", 0), honest.now); err != nil {
		t.Fatal(err)
	}
	honest.epoch("bob=B2")
	var ie *log.InconsistencyError
	if _, err := VerifySearch(bob, keys, "alice", honest.search("alice", known(bob)), honest.now); !errors.As(err, &ie) || ie.Kind != log.Fork {
		t.Fatalf("bob moving to the honest view: %v", err)
	}
	// Alice, shown bob's checkpoint (inside a group message), asks the
	// server to prove it consistent with hers: no proof can.
	bobCP := bob.Latest()
	p, _ := honest.dir.Consistency(bobCP.Size, known(alice))
	if _, err := alice.Advance(bobCP.Note, p); err == nil {
		t.Fatal("alice accepted bob's forked checkpoint")
	}
	// Rollback.
	old := honest.search("alice", 0)
	honest.epoch("alice=A2")
	if _, err := VerifySearch(alice, keys, "alice", honest.search("alice", known(alice)), honest.now); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifySearch(alice, keys, "alice", old, honest.now); !errors.As(err, &ie) || ie.Kind != log.Rollback {
		t.Fatalf("rolled back answer: %v", err)
	}
}

// Attack 6 of issue 11: a ghost list shown to bob but hidden from alice's
// monitoring. If it is in the tree, alice's history shows it; if the
// server skips it in her history, the chain breaks; if it rewrites her
// leaf to drop it from the chain, the auditor refuses the epoch.
func TestGhostVersionCannotBeHidden(t *testing.T) {
	s := newServer(t)
	s.epoch("alice=A1")
	keys := s.keys(t)
	alice := newVerifier(t, keys)
	r, err := VerifyHistory(alice, keys, "alice", Known{}, s.search("alice", 0), s.history("alice", 0, true), s.now)
	if err != nil {
		t.Fatal(err)
	}
	k := Known{Leaf: r.Leaf, Epoch: r.Current.Epoch}
	s.epoch("alice=ghost")
	bob := newVerifier(t, keys)
	if r, err := VerifySearch(bob, keys, "alice", s.search("alice", 0), s.now); err != nil || string(r.Current.Value) != "ghost" {
		t.Fatalf("bob sees %v %v", r, err)
	}
	s.epoch("alice=A1")

	// Shown honestly, alice sees the ghost version in her history.
	versions := s.history("alice", k.Epoch, false)
	if _, err := VerifyHistory(alice, keys, "alice", k, s.search("alice", known(alice)), versions, s.now); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 || string(versions[0].Value) != "ghost" {
		t.Fatalf("versions shown: %d", len(versions))
	}
	// Hidden: the history without it does not chain.
	if _, err := VerifyHistory(alice, keys, "alice", k, s.search("alice", known(alice)), versions[1:], s.now); !errors.Is(err, ErrHistory) {
		t.Fatalf("history without the ghost version: %v", err)
	}
	// Rewritten: a server that puts alice's leaf back as if the ghost had
	// never been (chained from her old leaf) makes an epoch no auditor
	// cosigns.
	a := NewAuditor(keys.Policy)
	for n := range s.records {
		if err := a.Apply(s.records[n], s.changes[n]); err != nil {
			t.Fatal(err)
		}
	}
	last := s.changes[len(s.changes)-1]
	rewritten := prefix.Entry{Index: last.Updates[0].Index, Value: LeafValue(k.Leaf, uint64(len(s.records)), last.Updates[0].Commitment)}
	tree, err := s.dir.tree.Insert([]prefix.Entry{rewritten})
	if err != nil {
		t.Fatal(err)
	}
	entry := log.Entry{Epoch: uint64(len(s.records)), Time: s.now.Add(time.Second), PrefixRoot: tree.Root()}
	rec, _ := entry.MarshalBinary()
	if err := a.Apply(rec, Changes{Epoch: entry.Epoch, Updates: last.Updates}); !errors.Is(err, ErrAudit) {
		t.Fatalf("auditor on a rewritten leaf: %v", err)
	}
	if a.Size() != int64(len(s.records)) {
		t.Fatal("a refused epoch changed the auditor")
	}
}

func TestWitnessGating(t *testing.T) {
	wskey, wvkey, _ := GenerateNoteKey(rand.Reader, "auditor.test")
	ws, _ := note.NewSigner(wskey)
	wv, _ := note.NewVerifier(wvkey)
	s := newServer(t, wv)
	if _, err := s.dir.Search("alice", 0); !errors.Is(err, ErrNotServing) {
		t.Fatalf("empty directory: %v", err)
	}
	s.epoch("alice=A1")
	if _, err := s.dir.Search("alice", 0); !errors.Is(err, ErrNotServing) {
		t.Fatalf("first epoch before cosigning: %v", err)
	}
	if _, err := s.dir.Prepare(rand.Reader, s.now.Add(time.Second), nil); !errors.Is(err, ErrPending) {
		t.Fatalf("prepare while pending: %v", err)
	}
	keys := s.keys(t, wv)
	a := NewAuditor(keys.Policy)
	cosign := func() {
		t.Helper()
		n := len(s.records) - 1
		if err := a.Apply(s.records[n], s.changes[n]); err != nil {
			t.Fatal(err)
		}
		c, err := a.Cosign(s.dir.Latest(), ws)
		if err != nil {
			t.Fatal(err)
		}
		if pub, err := s.dir.Publish(c); err != nil || pub == nil {
			t.Fatalf("publish: %v", err)
		}
	}
	cosign()
	s.epoch("alice=A2")
	// Served: still version 1, under a checkpoint the client's policy accepts.
	v := newVerifier(t, keys)
	r, err := VerifySearch(v, keys, "alice", s.search2("alice", 1), s.now)
	if err != nil || string(r.Current.Value) != "A1" {
		t.Fatalf("pending epoch served too early: %v", err)
	}
	cosign()
	r, err = VerifySearch(v, keys, "alice", s.search("alice", known(v)), s.now)
	if err != nil || string(r.Current.Value) != "A2" {
		t.Fatalf("after cosigning: %v", err)
	}
	// A cosignature by a key that is not a configured witness: refused.
	oskey, _, _ := GenerateNoteKey(rand.Reader, "other.test")
	os, _ := note.NewSigner(oskey)
	s.epoch("bob=B1")
	n := len(s.records) - 1
	if err := a.Apply(s.records[n], s.changes[n]); err != nil {
		t.Fatal(err)
	}
	forged, _ := a.Cosign(s.dir.Latest(), os)
	if _, err := s.dir.Publish(forged); err == nil {
		t.Fatal("published with an unknown cosigner")
	}
	if _, size := s.dir.Published(); size != int64(n) {
		t.Fatalf("served size %d after a refused cosignature", size)
	}
}

// search2 answers with the version-th version of label (for the gating
// test, where the served epoch is older than the stored updates).
func (s *server) search2(label string, version uint32) *Answer {
	l, err := s.dir.Search(label, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return &Answer{Lookup: *l, Current: opening(s.updates[label][version-1], l.Epoch)}
}

func TestChangesEncoding(t *testing.T) {
	c := Changes{Epoch: 9, Updates: []IndexedCommitment{{Index: prefix.Index{1}, Commitment: [32]byte{2}}}, Removals: []prefix.Index{{3}, {4}}}
	b, _ := c.MarshalBinary()
	got, err := ParseChanges(b)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(c) {
		t.Fatalf("round trip: %v %v", err, got)
	}
	for n := range len(b) {
		if _, err := ParseChanges(b[:n]); !errors.Is(err, ErrMalformedChanges) {
			t.Fatalf("truncated at %d: %v", n, err)
		}
	}
	if _, err := ParseChanges(append(b, 0)); !errors.Is(err, ErrMalformedChanges) {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzParseChanges(f *testing.F) {
	c := Changes{Epoch: 9, Updates: []IndexedCommitment{{Index: prefix.Index{1}}}, Removals: []prefix.Index{{3}}}
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChanges(b)
		if err != nil {
			return
		}
		again, _ := c.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// TestLeafValueKnownAnswer pins the chained leaf of doc.go against
// docs/formats.md (computed with Python's hashlib from the description).
func TestLeafValueKnownAnswer(t *testing.T) {
	var c [32]byte
	for i := range c {
		c[i] = 0x11
	}
	got := LeafValue(prefix.Value{}, 7, c)
	if hex.EncodeToString(got[:]) != "0c8de3e3cd489c24919fa760a5f4ae3f36bbc5f2119534a092e233f9dd406537" {
		t.Fatalf("LeafValue = %x", got)
	}
}
