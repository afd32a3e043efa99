package mlsbench

import (
	"bytes"
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

var (
	maxMembers    = flag.Int("mlsbench.max", 10000, "largest group size the size-scaled benchmarks build")
	maxFilled     = flag.Int("mlsbench.filled", 1000, "largest group size built with every member committing once (costs O(n²) signature checks to build)")
	benchSizes    = []int{10, 100, 1000, 10000}
	suite1        = ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	suiteXWing    = ciphersuite.MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519
	fixtureMu     sync.Mutex
	fixtureByName = map[string]*fixture{}
)

// fixture is a built group, kept as the persisted states of two members so
// that every benchmark starts from an identical copy: the creator (leaf 0),
// who commits, and an observer, who processes.
type fixture struct {
	suite    *ciphersuite.Suite
	n        int
	creator  []byte
	observer []byte
}

// shape says how a fixture's tree was built.
type shape string

const (
	// fresh: the creator added everyone in one commit, so only its own
	// direct path is filled and every other parent node is blank.
	fresh shape = "fresh"
	// filled: members were added two at a time and the first of each pair
	// then committed an update, so (almost) every parent node is filled,
	// as in a group where every member has committed once.
	filled shape = "filled"
	// freshNoTree is fresh with Config.OmitRatchetTree: Welcomes leave the
	// tree out and joiners get it out of band.
	freshNoTree shape = "fresh-tree-out-of-band"
)

func lookup(tb testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	tb.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

type member struct {
	name   string
	kp     []byte
	bundle *mls.KeyPackageBundle
}

func newMember(tb testing.TB, s *ciphersuite.Suite, name string) member {
	tb.Helper()
	_, priv, err := s.GenerateSigner(nil)
	if err != nil {
		tb.Fatal(err)
	}
	kp, bundle, err := mls.NewKeyPackage(s, mls.NewBasicCredential([]byte(name)), priv, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return member{name, kp, bundle}
}

// must turns a (value, error) result into the value, failing tb on error:
// must(f())(b).
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// merged takes the result of creating a commit on g and merges it:
// merged(b, g)(g.Update()).
func merged(tb testing.TB, g *mls.Group) func(*mls.CommitOutput, error) *mls.CommitOutput {
	return func(out *mls.CommitOutput, err error) *mls.CommitOutput {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := g.MergePendingCommit(); err != nil {
			tb.Fatal(err)
		}
		return out
	}
}

func process(tb testing.TB, msg []byte, groups ...*mls.Group) {
	tb.Helper()
	for _, g := range groups {
		if _, err := g.Process(msg); err != nil {
			tb.Fatal(err)
		}
	}
}

// getFixture builds (once per process) an n-member group of the given
// shape.
func getFixture(b *testing.B, id ciphersuite.ID, n int, sh shape) *fixture {
	b.Helper()
	key := fmt.Sprintf("%04x/%d/%s", id, n, sh)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if f, ok := fixtureByName[key]; ok {
		return f
	}
	s := lookup(b, id)
	_, priv, err := s.GenerateSigner(nil)
	if err != nil {
		b.Fatal(err)
	}
	opts := &mls.CreateOptions{Config: mls.Config{OmitRatchetTree: sh == freshNoTree}}
	creator := must(mls.CreateGroup(s, []byte("bench "+key), mls.NewBasicCredential([]byte("creator")), priv, opts))(b)
	obs := newMember(b, s, "observer")
	var observer *mls.Group
	switch sh {
	case fresh, freshNoTree:
		kps := [][]byte{obs.kp}
		for i := 2; i < n; i++ {
			kps = append(kps, newMember(b, s, fmt.Sprint("member ", i)).kp)
		}
		out := merged(b, creator)(creator.Add(kps...))
		observer = must(mls.JoinFromWelcome(out.Welcome, obs.bundle, ratchetTree(b, creator), nil))(b)
	case filled:
		out := merged(b, creator)(creator.Add(obs.kp))
		observer = must(mls.JoinFromWelcome(out.Welcome, obs.bundle, nil, nil))(b)
		process(b, merged(b, observer)(observer.Update()).Commit, creator)
		for size := 2; size < n; {
			a := newMember(b, s, fmt.Sprint("member ", size))
			kps := [][]byte{a.kp}
			if size+1 < n {
				kps = append(kps, newMember(b, s, fmt.Sprint("member ", size+1)).kp)
			}
			size += len(kps)
			out := merged(b, creator)(creator.Add(kps...))
			process(b, out.Commit, observer)
			ga := must(mls.JoinFromWelcome(out.Welcome, a.bundle, nil, nil))(b)
			process(b, merged(b, ga)(ga.Update()).Commit, creator, observer)
		}
	}
	if got := len(creator.Members()); got != n {
		b.Fatalf("built %d members, want %d", got, n)
	}
	f := &fixture{suite: s, n: n,
		creator:  must(creator.MarshalBinary())(b),
		observer: must(observer.MarshalBinary())(b),
	}
	fixtureByName[key] = f
	return f
}

func (f *fixture) groups(b *testing.B) (creator, observer *mls.Group) {
	b.Helper()
	return must(mls.UnmarshalGroup(f.creator))(b), must(mls.UnmarshalGroup(f.observer))(b)
}

// ratchetTree returns g's ratchet tree (the ratchet_tree extension body),
// as a delivery service would hand it out of band.
func ratchetTree(b *testing.B, g *mls.Group) []byte {
	b.Helper()
	var msg mls.MLSMessage
	if err := msg.Unmarshal(must(g.GroupInfo(true))(b)); err != nil {
		b.Fatal(err)
	}
	data, ok := msg.GroupInfo.Extensions.RatchetTreeData()
	if !ok {
		b.Fatal("GroupInfo without ratchet tree")
	}
	return data
}

// sizes runs body for each group size and shape the flags allow.
func sizes(b *testing.B, body func(b *testing.B, f *fixture), shapes ...shape) {
	if shapes == nil {
		shapes = []shape{filled, fresh}
	}
	for _, sh := range shapes {
		for _, n := range benchSizes {
			if n > *maxMembers || (sh == filled && n > *maxFilled) {
				continue
			}
			b.Run(fmt.Sprintf("%s/n=%d", sh, n), func(b *testing.B) {
				body(b, getFixture(b, suite1, n, sh))
			})
		}
	}
}

// BenchmarkAddMember is a member creating and merging the commit that adds
// one member (with its Welcome) to an n-member group. Target: < 50 ms at
// 10 000 members, growing ~log n. The Welcome carries the ratchet tree
// except for the fresh-tree-out-of-band shape.
func BenchmarkAddMember(b *testing.B) {
	sizes(b, func(b *testing.B, f *fixture) {
		creator, _ := f.groups(b)
		var commitBytes, welcomeBytes int
		var cpu ratio
		i := 0
		for b.Loop() {
			b.StopTimer()
			m := newMember(b, f.suite, fmt.Sprint("newcomer ", i))
			i++
			b.StartTimer()
			cpu.time(func() {
				out := merged(b, creator)(creator.Add(m.kp))
				commitBytes, welcomeBytes = len(out.Commit), len(out.Welcome)
			})
		}
		cpu.report(b)
		b.ReportMetric(float64(commitBytes), "commit-B")
		b.ReportMetric(float64(welcomeBytes), "welcome-B")
	}, filled, fresh, freshNoTree)
}

// BenchmarkUpdate is a member creating and merging an update commit (a
// fresh UpdatePath encrypted to the resolution of its copath): with blank
// parent nodes that resolution grows towards n.
func BenchmarkUpdate(b *testing.B) {
	sizes(b, func(b *testing.B, f *fixture) {
		creator, _ := f.groups(b)
		var commitBytes int
		var cpu ratio
		for b.Loop() {
			cpu.time(func() { commitBytes = len(merged(b, creator)(creator.Update()).Commit) })
		}
		cpu.report(b)
		b.ReportMetric(float64(commitBytes), "commit-B")
	})
}

// BenchmarkProcessUpdate is another member processing an update commit.
func BenchmarkProcessUpdate(b *testing.B) {
	sizes(b, func(b *testing.B, f *fixture) {
		creator, observer := f.groups(b)
		var cpu ratio
		for b.Loop() {
			b.StopTimer()
			out := merged(b, creator)(creator.Update())
			b.StartTimer()
			cpu.time(func() { process(b, out.Commit, observer) })
		}
		cpu.report(b)
	})
}

// BenchmarkProcessAdd is another member processing that commit.
func BenchmarkProcessAdd(b *testing.B) {
	sizes(b, func(b *testing.B, f *fixture) {
		creator, observer := f.groups(b)
		var cpu ratio
		i := 0
		for b.Loop() {
			b.StopTimer()
			m := newMember(b, f.suite, fmt.Sprint("newcomer ", i))
			i++
			out := merged(b, creator)(creator.Add(m.kp))
			b.StartTimer()
			cpu.time(func() { process(b, out.Commit, observer) })
		}
		cpu.report(b)
	})
}

// BenchmarkJoin is the added member joining from the Welcome (ratchet tree
// included), reported against verifying every leaf signature of the same
// tree (metric x-verify-leaves, measured in the same run). Target: ≤ 1.2x.
func BenchmarkJoin(b *testing.B) {
	sizes(b, func(b *testing.B, f *fixture) {
		creator, _ := f.groups(b)
		var joins, floor ratio
		i := 0
		for b.Loop() {
			b.StopTimer()
			m := newMember(b, f.suite, fmt.Sprint("newcomer ", i))
			i++
			out := merged(b, creator)(creator.Add(m.kp))
			verify := verifyLeaves(b, creator)
			b.StartTimer()
			joins.time(func() { must(mls.JoinFromWelcome(out.Welcome, m.bundle, nil, nil))(b) })
			b.StopTimer()
			floor.time(verify)
			b.StartTimer()
		}
		joins.report(b)
		b.ReportMetric(joins.over(floor), "x-verify-leaves")
	})
}

// ratio accumulates the time of an operation (measured alternately with
// its baseline, when it has one). It counts the CPU time of the whole
// process where the platform reports it (processCPU): that is the work
// done, on every core (tree validation verifies signatures in parallel),
// and it holds on a loaded machine. Elsewhere it counts wall time.
type ratio time.Duration

func (r *ratio) time(op func()) {
	cpu0, ok := processCPU()
	start := time.Now()
	op()
	if cpu1, ok1 := processCPU(); ok && ok1 {
		*r += ratio(cpu1 - cpu0)
		return
	}
	*r += ratio(time.Since(start))
}

func (r ratio) over(base ratio) float64 { return float64(r) / float64(base) }

// report adds the accumulated time per iteration as the cpu-ms/op metric:
// unlike ns/op it does not grow when other processes load the machine,
// and it adds up the work of all cores.
func (r ratio) report(b *testing.B) {
	b.ReportMetric(float64(r)/1e6/float64(b.N), "cpu-ms/op")
}

// verifyLeaves returns an operation verifying the signature of every leaf
// of g's tree: the floor under any join, which must check them all (RFC
// 9420 §12.4.3.1, §7.3).
func verifyLeaves(b *testing.B, g *mls.Group) func() {
	tree := must(mls.DecodeRatchetTree(g.Suite(), ratchetTree(b, g)))(b)
	return func() {
		for l := range tree.NumLeaves() {
			if ln := tree.Leaf(l); ln != nil {
				if err := ln.VerifySignature(g.Suite(), g.GroupID(), l); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkProtectUnprotect1KiB encrypts a 1 KiB application message and
// decrypts it at another member, reported against one Ed25519 sign and
// verify plus one AEAD seal and open of 1 KiB (metric x-primitives,
// measured in the same run). Target: ≤ 1.5x.
func BenchmarkProtectUnprotect1KiB(b *testing.B) {
	s := lookup(b, suite1)
	_, priv, err := s.GenerateSigner(nil)
	if err != nil {
		b.Fatal(err)
	}
	alice := must(mls.CreateGroup(s, []byte("protect"), mls.NewBasicCredential([]byte("alice")), priv, nil))(b)
	bob := newMember(b, s, "bob")
	out := merged(b, alice)(alice.Add(bob.kp))
	bg := must(mls.JoinFromWelcome(out.Welcome, bob.bundle, nil, nil))(b)
	msg := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	floorOp := primitives(b, s)
	var msgs, floor ratio
	for b.Loop() {
		msgs.time(func() {
			ct := must(alice.Encrypt(msg, nil))(b)
			res := must(bg.Process(ct))(b)
			if len(res.Plaintext) != len(msg) {
				b.Fatal("wrong plaintext")
			}
		})
		b.StopTimer()
		floor.time(floorOp)
		b.StartTimer()
	}
	msgs.report(b)
	b.ReportMetric(msgs.over(floor), "x-primitives")
}

// primitives returns the cryptographic floor of one protected message: a
// signature, its verification, and an AEAD seal and open of 1 KiB.
func primitives(b *testing.B, s *ciphersuite.Suite) func() {
	signer, _, err := s.GenerateSigner(nil)
	if err != nil {
		b.Fatal(err)
	}
	key, nonce := s.RandomBytes(s.Nk()), s.RandomBytes(s.Nn())
	pt, tbs := make([]byte, 1024), make([]byte, 1100)
	return func() {
		sig := must(signer.SignWithLabel("FramedContentTBS", tbs))(b)
		if err := s.VerifyWithLabel(signer.Public(), "FramedContentTBS", tbs, sig); err != nil {
			b.Fatal(err)
		}
		ct := must(s.AEADSeal(key, nonce, nil, pt))(b)
		must(s.AEADOpen(key, nonce, nil, ct))(b)
	}
}

// BenchmarkPrimitives reports the floor used by x-primitives on its own.
func BenchmarkPrimitives(b *testing.B) {
	op := primitives(b, lookup(b, suite1))
	for b.Loop() {
		op()
	}
}

// BenchmarkGroupState reports a member's state of the largest fresh group:
// the MarshalBinary size and the heap a restored Group holds. Target:
// < 20 MiB at 10 000 members.
func BenchmarkGroupState(b *testing.B) {
	n := min(*maxMembers, 10000)
	f := getFixture(b, suite1, n, fresh)
	var heap uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g := must(mls.UnmarshalGroup(f.observer))(b)
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(g)
	}
	b.ReportMetric(float64(n), "members")
	b.ReportMetric(float64(len(f.observer))/(1<<20), "MiB-marshaled")
	b.ReportMetric(float64(heap)/(1<<20), "MiB-heap")
}

// BenchmarkXWing compares the X-Wing suite (0xF001) with suite 1 on a
// 100-member group: time per update commit (created and merged), and the
// size of an update commit, an add commit and its Welcome.
func BenchmarkXWing(b *testing.B) {
	for _, id := range []ciphersuite.ID{suite1, suiteXWing} {
		b.Run(fmt.Sprintf("suite=%#04x", uint16(id)), func(b *testing.B) {
			f := getFixture(b, id, 100, filled)
			creator, _ := f.groups(b)
			var updateBytes int
			var cpu ratio
			for b.Loop() {
				cpu.time(func() { updateBytes = len(merged(b, creator)(creator.Update()).Commit) })
			}
			cpu.report(b)
			add := merged(b, creator)(creator.Add(newMember(b, f.suite, "newcomer").kp))
			b.ReportMetric(float64(updateBytes), "update-B")
			b.ReportMetric(float64(len(add.Commit)), "add-commit-B")
			b.ReportMetric(float64(len(add.Welcome)), "welcome-B")
		})
	}
}

// pqMembers is the group size of BenchmarkXWingCost.
var pqMembers = flag.Int("mlsbench.pq.n", 1000, "group size of BenchmarkXWingCost")

// BenchmarkXWingCost measures what making X-Wing (0xF001) the default
// suite costs a messenger, against suite 1 in the same run: the size and
// making of a KeyPackage, and, in a group of -mlsbench.pq.n members (1 000;
// the fresh shape, which one Add builds, so the setup stays in seconds),
// adding a member (commit and Welcome with the tree, created and merged),
// joining from that Welcome, an update commit (a full UpdatePath; with
// blank parents it is encrypted to ~n leaves: the worst case) and another
// member processing it. Compare the lines of the two suites name by name.
func BenchmarkXWingCost(b *testing.B) {
	for _, id := range []ciphersuite.ID{suite1, suiteXWing} {
		s := lookup(b, id)
		name := func(op string) string { return fmt.Sprintf("%s/suite=%#04x", op, uint16(id)) }
		b.Run(name("keypackage"), func(b *testing.B) {
			_, priv, err := s.GenerateSigner(nil)
			if err != nil {
				b.Fatal(err)
			}
			var size int
			var cpu ratio
			for b.Loop() {
				cpu.time(func() {
					kp, _, err := mls.NewKeyPackage(s, mls.NewBasicCredential([]byte("alice/0123456789abcdef0123456789abcdef")), priv, nil)
					if err != nil {
						b.Fatal(err)
					}
					size = len(kp)
				})
			}
			cpu.report(b)
			b.ReportMetric(float64(size), "keypackage-B")
		})
		n := *pqMembers
		b.Run(name(fmt.Sprintf("add/n=%d", n)), func(b *testing.B) {
			creator, _ := getFixture(b, id, n, fresh).groups(b)
			var commitBytes, welcomeBytes int
			var cpu ratio
			i := 0
			for b.Loop() {
				b.StopTimer()
				m := newMember(b, s, fmt.Sprint("newcomer ", i))
				i++
				b.StartTimer()
				cpu.time(func() {
					out := merged(b, creator)(creator.Add(m.kp))
					commitBytes, welcomeBytes = len(out.Commit), len(out.Welcome)
				})
			}
			cpu.report(b)
			b.ReportMetric(float64(commitBytes), "commit-B")
			b.ReportMetric(float64(welcomeBytes), "welcome-B")
		})
		b.Run(name(fmt.Sprintf("join/n=%d", n)), func(b *testing.B) {
			creator, _ := getFixture(b, id, n, fresh).groups(b)
			var cpu ratio
			i := 0
			for b.Loop() {
				b.StopTimer()
				m := newMember(b, s, fmt.Sprint("newcomer ", i))
				i++
				out := merged(b, creator)(creator.Add(m.kp))
				b.StartTimer()
				cpu.time(func() { must(mls.JoinFromWelcome(out.Welcome, m.bundle, nil, nil))(b) })
			}
			cpu.report(b)
		})
		b.Run(name(fmt.Sprintf("update/n=%d", n)), func(b *testing.B) {
			creator, _ := getFixture(b, id, n, fresh).groups(b)
			var commitBytes int
			var cpu ratio
			for b.Loop() {
				cpu.time(func() { commitBytes = len(merged(b, creator)(creator.Update()).Commit) })
			}
			cpu.report(b)
			b.ReportMetric(float64(commitBytes), "commit-B")
		})
		b.Run(name(fmt.Sprintf("process-update/n=%d", n)), func(b *testing.B) {
			creator, observer := getFixture(b, id, n, fresh).groups(b)
			var cpu ratio
			for b.Loop() {
				b.StopTimer()
				out := merged(b, creator)(creator.Update())
				b.StartTimer()
				cpu.time(func() { process(b, out.Commit, observer) })
			}
			cpu.report(b)
		})
	}
}
